"""With a schema registry configured, messages use Confluent framing (00 + schema id) and are
read back through the registry; single-object messages stay readable. The registry here is a
minimal implementation of its two REST endpoints on loopback."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from streams.serdes import FaustAvroCodec
from topics.codec import CONFLUENT_MAGIC, AvroCodec
from topics.errors import SchemaRegistryError, UnknownSchemaError
from topics.registry import SchemaRegistryClient


class _Registry(BaseHTTPRequestHandler):
    schemas: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server API
        schema = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["schema"]
        if schema not in self.schemas:
            self.schemas.append(schema)
        self._answer({"id": self.schemas.index(schema) + 1})

    def do_GET(self):  # noqa: N802
        schema_id = int(self.path.rsplit("/", 1)[1])
        if schema_id > len(self.schemas):
            self.send_response(404)
            self.end_headers()
            return
        self._answer({"schema": self.schemas[schema_id - 1]})

    def _answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry_url():
    _Registry.schemas = []
    server = HTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


RESULT = {"task_id": "t1", "account_id": "a", "task_type": "sync_creatives", "status": "COMPLETED",
          "result_json": "{}", "completed_at": 1_700_000_000_000}


def test_confluent_framing_round_trips_through_the_registry(registry_url):
    writer = AvroCodec("task_result", registry=SchemaRegistryClient(registry_url), subject="t-value")
    encoded = writer.encode(RESULT)
    assert encoded[:1] == CONFLUENT_MAGIC and int.from_bytes(encoded[1:5], "big") == 1
    reader = AvroCodec("task_result", registry=SchemaRegistryClient(registry_url))  # a fresh process: fetches by id
    assert reader.decode(encoded)["task_id"] == "t1"
    assert reader.decode(AvroCodec("task_result").encode(RESULT))["task_id"] == "t1", "single-object still readable"


def test_confluent_message_without_registry_is_a_typed_error(registry_url):
    encoded = AvroCodec("task_result", registry=SchemaRegistryClient(registry_url)).encode(RESULT)
    with pytest.raises(UnknownSchemaError):
        AvroCodec("task_result").decode(encoded)


def test_unreachable_registry_is_a_typed_error():
    from creative_sync.broker import free_port

    with pytest.raises(SchemaRegistryError):
        AvroCodec("task_result", registry=SchemaRegistryClient(f"http://127.0.0.1:{free_port()}", timeout_s=1)).encode(RESULT)


def test_the_codec_is_a_faust_codec():
    codec = FaustAvroCodec(AvroCodec("task_result"))
    assert codec.loads(codec.dumps(RESULT))["task_id"] == "t1"
