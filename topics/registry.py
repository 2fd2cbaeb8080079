"""A minimal client for the Confluent Schema Registry REST API (register a schema, fetch one by id).

Written by hand on purpose: the official client ships inside confluent-kafka (librdkafka), and
the two calls we need are plain HTTP. Calls are synchronous and cached: each schema is
registered once per process and each id fetched once, so no hot path waits on the network.
"""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

from topics.errors import SchemaRegistryError

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistryClient:
    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._ids_by_subject_schema: dict[tuple[str, str], int] = {}
        self._schemas_by_id: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": _CONTENT_TYPE, "Accept": _CONTENT_TYPE}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise SchemaRegistryError(f"schema registry {method} {path}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SchemaRegistryError(f"schema registry {method} {path}: {exc}") from exc

    def register(self, subject: str, canonical_schema: str) -> int:
        """The registry id of `canonical_schema` under `subject`, registering it if new."""
        key = (subject, canonical_schema)
        with self._lock:
            if key in self._ids_by_subject_schema:
                return self._ids_by_subject_schema[key]
        answer = self._call("POST", f"/subjects/{urllib.request.quote(subject, safe='')}/versions", {"schema": canonical_schema})
        schema_id = int(answer["id"])
        with self._lock:
            self._ids_by_subject_schema[key] = schema_id
            self._schemas_by_id[schema_id] = json.loads(canonical_schema)
        return schema_id

    def schema_by_id(self, schema_id: int) -> Any:
        with self._lock:
            if schema_id in self._schemas_by_id:
                return self._schemas_by_id[schema_id]
        answer = self._call("GET", f"/schemas/ids/{schema_id}")
        schema = json.loads(answer["schema"])
        with self._lock:
            self._schemas_by_id[schema_id] = schema
        return schema
