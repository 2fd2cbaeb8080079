"""The Avro codec used on every topic: fastavro, with the writer schema identified on every message.

Two framings (both read, whatever is configured, so a topic can move from one to the other):
- Avro single-object encoding (default): C3 01 + 8-byte CRC-64-AVRO fingerprint + body.
  Writer schemas are looked up among the current and released versions in avro/.
- Confluent wire format (when a registry is configured): 00 + 4-byte schema id + body.
Old data is read through Avro schema resolution into the current reader schema.
"""
from __future__ import annotations

import io
import json
import struct
import weakref
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from pydantic import BaseModel

from topics.errors import (
    CodecError,
    IncompatibleSchemaError,
    MalformedMessageError,
    RecordEncodeError,
    UnknownSchemaError,
)
from topics.registry import SchemaRegistryClient
from topics.schemas import SchemaFamily, family

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SINGLE_OBJECT_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_CONFLUENT_HEADER = 5


class AvroCodec:
    """Encodes and decodes the records of one schema family; thread-safe, no I/O without a registry."""

    def __init__(
        self,
        schemas: SchemaFamily | str,
        *,
        registry: SchemaRegistryClient | None = None,
        subject: str | None = None,
    ) -> None:
        self.family = family(schemas) if isinstance(schemas, str) else schemas
        self.reader = self.family.current
        self.registry = registry
        self.subject = subject or self.reader.name
        self._writers = self.family.writers
        self._registry_writers: dict[int, Any] = {}
        self._registry_id: int | None = None

    # -- encode ------------------------------------------------------------------------------
    def header(self) -> bytes:
        if self.registry is None:
            return SINGLE_OBJECT_MAGIC + self.reader.fingerprint
        if self._registry_id is None:
            self._registry_id = self.registry.register(self.subject, self.reader.canonical)
        return CONFLUENT_MAGIC + struct.pack(">I", self._registry_id)

    def encode(self, record: Any) -> bytes:
        if isinstance(record, BaseModel):
            record = record.model_dump()
        return self.header() + self._body(self.reader.parsed, record)

    def _body(self, schema: Any, record: Any, what: str = "record") -> bytes:
        buffer = io.BytesIO()
        try:
            schemaless_writer(buffer, schema, record)
        except (ValueError, TypeError, KeyError, AttributeError, struct.error) as exc:
            raise RecordEncodeError(f"{self.reader.name}: {what} does not fit the schema: {exc}") from exc
        return buffer.getvalue()

    # -- decode ------------------------------------------------------------------------------
    def _writer_for(self, data: bytes) -> tuple[Any, int]:
        """(writer schema, header length) for framed `data`."""
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < _SINGLE_OBJECT_HEADER:
                raise MalformedMessageError(f"{self.reader.name}: truncated single-object header")
            writer = self._writers.get(data[2:_SINGLE_OBJECT_HEADER])
            if writer is None:
                raise UnknownSchemaError(
                    f"{self.reader.name}: unknown writer fingerprint {data[2:_SINGLE_OBJECT_HEADER].hex()}"
                )
            return writer.parsed, _SINGLE_OBJECT_HEADER
        if data[:1] == CONFLUENT_MAGIC and len(data) >= _CONFLUENT_HEADER:
            schema_id = struct.unpack(">I", data[1:_CONFLUENT_HEADER])[0]
            if self.registry is None:
                raise UnknownSchemaError(f"{self.reader.name}: Confluent schema id {schema_id} but no registry configured")
            writer = self._registry_writers.get(schema_id)
            if writer is None:
                writer = parse_schema(self.registry.schema_by_id(schema_id), named_schemas={})
                self._registry_writers[schema_id] = writer
            return writer, _CONFLUENT_HEADER
        raise MalformedMessageError(f"{self.reader.name}: not a framed Avro message (starts with {data[:4]!r})")

    def decode(self, data: bytes | None) -> Any:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise MalformedMessageError(f"{self.reader.name}: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        writer, offset = self._writer_for(data)
        buffer = io.BytesIO(data)
        buffer.seek(offset)
        reader = None if writer is self.reader.parsed else self.reader.parsed
        try:
            value = schemaless_reader(buffer, writer, reader)
        except CodecError:
            raise
        except Exception as exc:  # fastavro raises many types for bad bytes; one typed error out
            if type(exc).__name__ == "SchemaResolutionError":
                raise IncompatibleSchemaError(f"{self.reader.name}: {exc}") from exc
            raise MalformedMessageError(f"{self.reader.name}: undecodable body: {type(exc).__name__}: {exc}") from exc
        if buffer.tell() != len(data):
            raise MalformedMessageError(f"{self.reader.name}: {len(data) - buffer.tell()} trailing bytes")
        return value


class ModelCodec(AvroCodec):
    """An AvroCodec that returns pydantic models (the event models of topics.events)."""

    def __init__(self, schemas: SchemaFamily | str, model: type[BaseModel], **kwargs: Any) -> None:
        super().__init__(schemas, **kwargs)
        self.model = model

    def decode(self, data: bytes | None) -> Any:
        value = super().decode(data)
        try:
            return self.model.model_validate(value)
        except ValueError as exc:
            raise MalformedMessageError(f"{self.reader.name}: decoded record is not a valid {self.model.__name__}: {exc}") from exc


class RowCachingCodec(ModelCodec):
    """A ModelCodec for a record whose last field is an array of records (a creative's status, one
    row per sales agent) that encodes each row once, not on every write of the record.

    A status write often changes only some of a creative's ten rows, yet fastavro encodes all ten
    again, checking every optional field's union as it goes (~9 us a row, ~90 us a write; ~7 % of a
    worker delivering to ten agents). Rows are immutable models replaced, never changed, when they change
    (streams.status.logic), so the bytes of a row object stay its bytes: they are kept by object
    identity, and the record is spliced together as Avro writes it: the other fields, then the
    array as one block (its item count, the items, a zero). No library encodes part of a record
    from cache; tests/unit/test_codec.py checks the splice gives fastavro's bytes exactly.
    """

    def __init__(self, schemas: SchemaFamily | str, model: type[BaseModel], *, cache_size: int = 100_000,
                 **kwargs: Any) -> None:
        super().__init__(schemas, model, **kwargs)
        last = self.reader.raw["fields"][-1]
        if not (isinstance(last["type"], dict) and last["type"].get("type") == "array"):
            raise ValueError(f"{self.reader.name}: the last field is not an array")
        self._rows_field = last["name"]
        self._item = parse_schema(last["type"]["items"], named_schemas={})
        self._rows: dict[int, tuple[weakref.ref, bytes]] = {}  # id(row) -> (the row, its bytes)
        self._cache_size = cache_size

    def encode(self, record: Any) -> bytes:
        if not isinstance(record, BaseModel):
            return super().encode(record)
        rows = getattr(record, self._rows_field)
        head = record.model_dump(exclude={self._rows_field})
        head[self._rows_field] = []
        body = self._body(self.reader.parsed, head)
        if not rows:
            return self.header() + body
        # body[:-1]: without the empty array's closing zero, which the rows go before
        return b"".join([self.header(), body[:-1], _zigzag_varint(len(rows)), *map(self._row_bytes, rows), b"\x00"])

    def _row_bytes(self, row: BaseModel) -> bytes:
        cached = self._rows.get(id(row))
        if cached is not None and cached[0]() is row:
            return cached[1]
        encoded = self._body(self._item, row.model_dump(), "a row")
        if len(self._rows) >= self._cache_size:
            self._rows.clear()
        self._rows[id(row)] = (weakref.ref(row), encoded)
        return encoded


def _zigzag_varint(n: int) -> bytes:
    """An Avro long (zigzag, then base-128 varint)."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: orjson writes what json.dumps(sort_keys, compact, ensure_ascii=False, default=str) writes, ~10 x
#: faster (a 100-creative command hashed and serialised its creatives ~400 times: ~8 % of the worker):
#: datetimes and dataclasses go to `default=str` as with json. Floats in exponent form differ
#: (1e+16 there, 1e16 here) and NaN becomes null.
_ORJSON_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def to_json(value: Any) -> str:
    """Compact canonical JSON for the *_json string fields of events (sorted keys: stable hashes)."""
    return to_json_bytes(value).decode()


def from_json(text: str | bytes) -> Any:
    """json.loads, by orjson (~3 x faster on a 100-creative request); what orjson refuses and json
    reads (NaN, integers beyond 64 bits) is read by json."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def to_json_bytes(value: Any) -> bytes:
    """`to_json(value)` as UTF-8 bytes (what hashes and HTTP bodies need)."""
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_CANONICAL)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, a recursion limit: json's way
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
