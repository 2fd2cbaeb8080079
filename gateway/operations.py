"""One registry of operations, from which both transports are generated: MCP tools at `/mcp` and
REST routes under `/api/v1/` (with their OpenAPI document). Adding an operation here adds it to both.
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.auth import Principal
from gateway.errors import AdcpRequestError
from gateway.validation import check_against, check_arguments, compile_schema, discovery_schema, schema_location
from streams.library.versions import LATEST, UNVERSIONED, VersionRefused, requested_version, shaped, with_derived_fields

log = logging.getLogger(__name__)

Handler = Callable[["Call"], Awaitable[dict[str, Any]]]
#: A schema this small is advertised as it is; a larger one as its discovery summary.
_ADVERTISED_AS_IS_BYTES = 8000


def _about_a_field_outside(error: Any, known: frozenset[str]) -> bool:
    """A schema error about a top-level field given in the request that `known` does not list."""
    path = list(error.instance_path)
    return type(error.kind).__name__ != "Required" and bool(path) and path[0] not in known


@functools.cache
def _top_level_fields(tool: str, version: str) -> frozenset[str]:
    return frozenset(official_schema(tool, version).get("properties", {}))


def official_schema(tool: str, version: str | None = None) -> dict[str, Any]:
    """The official request schema of an AdCP task in a release (what requests are validated against)."""
    from adcp.validation import get_validator

    validator = get_validator(tool, "request", version=version)
    return dict(validator.schema) if validator is not None else {"type": "object"}


@dataclass(frozen=True)
class Call:
    """One invocation of an operation, whichever transport it came through."""

    app: web.Application
    principal: Principal
    params: dict[str, Any]
    request_id: str = "-"
    version: str = LATEST  # the AdCP release serving this call (its request and answer shapes)


@dataclass(frozen=True)
class Operation:
    name: str
    summary: str
    input_schema: dict[str, Any]  # JSON Schema of the arguments (OpenAPI; tools/list shows its summary)
    handler: Handler
    tags: tuple[str, ...] = field(default=("creative",))
    #: An AdCP task: its input is checked against the official schema of the request's release, an
    #: unversioned request gets what 3.0-era clients leave out derived, and the answer is shaped for
    #: that release. Other operations (ours) have one schema.
    adcp: bool = False
    #: What the input is checked against, from the official schema, when that differs (sync_creatives:
    #: creatives are checked by the handler, per validation_mode).
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    @classmethod
    def task(cls, name: str, summary: str, handler: Handler, *, tags: tuple[str, ...] = ("creative",),
             check: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Operation:
        """An AdCP task, whose schemas are the adcp package's."""
        return cls(name, summary, official_schema(name), handler, tags, adcp=True, check=check)

    @functools.cached_property
    def discovery_schema(self) -> dict[str, Any]:
        """The input schema tools/list shows (MCP clients load every tool's at once)."""
        small = len(json.dumps(self.input_schema)) <= _ADVERTISED_AS_IS_BYTES
        return self.input_schema if small else discovery_schema(self.input_schema)

    @functools.cached_property
    def _validators(self) -> dict[str | None, Any]:
        return {}

    def _validator(self, version: str | None) -> Any:
        if version not in self._validators:
            official = self.adcp and version is not None
            schema = official_schema(self.name, version) if official else self.input_schema
            self._validators[version] = compile_schema(self.check(schema) if self.check is not None else schema,
                                                       schema_location(self.name, version) if official else None)
        return self._validators[version]

    def _release(self, principal: Principal, params: Any) -> tuple[str | None, Any]:
        """(release, params): the request's release, or for an unversioned one its derived form and
        the release whose shapes it is in (3.0 per the spec; 3.2 when only valid as 3.2)."""
        if not self.adcp or not isinstance(params, dict):
            return None, params
        try:
            asked = requested_version(params)
        except VersionRefused as refused:
            raise AdcpRequestError(400, refused.code, refused.message, field=refused.field,
                                   suggestion=refused.suggestion) from None
        if asked is not None:
            return asked, params
        only = next(iter(principal.accounts)) if len(principal.accounts) == 1 else None
        derived = with_derived_fields(self.name, params, only)
        # 3.0 per the spec, or 3.2 shapes: either is served. But a field that only one release
        # knows must have that release's shape, or a request could pass by being read as the other
        # (3.0 ignores 3.2's typed `assignment_limit`; 3.2 ignores fields it dropped).
        as_3_0 = list(self._validator(UNVERSIONED).iter_errors(derived))
        as_3_2 = list(self._validator(LATEST).iter_errors(derived))
        known_3_0, known_3_2 = self._properties(UNVERSIONED), self._properties(LATEST)
        if as_3_0 and any(_about_a_field_outside(e, known_3_2) for e in as_3_0):
            check_against(self._validator(UNVERSIONED), derived)  # refused, in 3.0's words
        if any(_about_a_field_outside(e, known_3_0) for e in as_3_2):
            check_against(self._validator(LATEST), derived)  # refused, in 3.2's words
        return (UNVERSIONED if not as_3_0 else LATEST), derived

    def _properties(self, version: str) -> frozenset[str]:
        return _top_level_fields(self.name, version)

    async def invoke(self, app: web.Application, principal: Principal, params: Any, request_id: str) -> dict[str, Any]:
        """The one way an operation runs, from any transport: its input checked first (account,
        release, shape, strings, schema), and any failure leaving as an AdCP error, never a traceback."""
        account = params.get("account") if isinstance(params, dict) else None
        if isinstance(account, dict) and isinstance(account.get("account_id"), str):
            # Every operation, even one that only reads formats; before anything else is looked at.
            principal.require_account(account["account_id"])
        try:
            # shape and strings first: what the release is derived from must be safe to read
            version, params = self._release(principal, check_arguments(params))
            call = Call(app, principal, check_against(self._validator(version), params), request_id, version or LATEST)
            body = await self.handler(call)
        except AdcpRequestError:
            raise
        except Exception:
            log.exception("operation %s failed unexpectedly (request %s)", self.name, request_id)
            raise AdcpRequestError(500, "SERVICE_UNAVAILABLE", f"Internal error while running {self.name} "
                                   f"(request id {request_id}); it may not have completed.", recovery="transient",
                                   retry_after=1, suggestion="Retry; quote the request id if it happens again.") from None
        if self.adcp:
            body = shaped(self.name, call.version, body)
        # The protocol envelope's task status, required on every answer (a submitted task, or
        # get_task_status's own, says so already).
        return body if "status" in body else {"status": "completed", **body}


class Registry:
    def __init__(self, operations: Iterable[Operation] = ()) -> None:
        self._operations: dict[str, Operation] = {}
        for operation in operations:
            self.add(operation)

    def add(self, operation: Operation) -> None:
        if operation.name in self._operations:
            raise ValueError(f"operation {operation.name} registered twice")
        self._operations[operation.name] = operation

    def get(self, name: str) -> Operation | None:
        return self._operations.get(name)

    def __iter__(self):
        return iter(self._operations.values())
