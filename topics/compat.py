"""Schema compatibility: can data written with one version be read with another?

fastavro resolves schemas but has no compatibility checker, so the check is done the way it
matters: write sample records with the old (writer) schema, read them with the new (reader)
schema, and report every failure, plus the reader fields that old data cannot fill.
"""
from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from topics.schemas import SchemaVersion


def _fields(parsed: Any) -> dict[str, Any]:
    return {f["name"]: f for f in parsed.get("fields", [])} if isinstance(parsed, dict) else {}


def read_problems(writer: SchemaVersion, reader: SchemaVersion, samples: int = 25) -> list[str]:
    """Why data written with `writer` cannot be read with `reader` (empty: it can)."""
    problems = []
    writer_fields, reader_fields = _fields(writer.parsed), _fields(reader.parsed)
    for name, field in reader_fields.items():
        if name not in writer_fields and "default" not in field:
            problems.append(f"field {name!r} is new and has no default: old records cannot fill it")
    for record in generate_many(writer.parsed, samples):
        buffer = io.BytesIO()
        schemaless_writer(buffer, writer.parsed, record)
        buffer.seek(0)
        try:
            schemaless_reader(buffer, writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro's resolution errors vary by type
            problems.append(f"{type(exc).__name__}: {exc}")
            break
    return problems
