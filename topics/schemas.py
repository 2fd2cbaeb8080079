"""Loads the Avro schemas of avro/ (the source of truth) and every released version of them.

`avro/<name>.avsc` is the current version; `avro/history/<name>/v<N>.avsc` are the versions
that have been released. Data written with any of them stays readable (see tests/unit/test_schema_compat.py).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form


def avro_dir() -> Path:
    """Where the .avsc files live: $CREATIVE_SYNC_AVRO_DIR, else the repository's avro/."""
    configured = os.environ.get("CREATIVE_SYNC_AVRO_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "avro"


@dataclass(frozen=True)
class SchemaVersion:
    """One parsed Avro schema and its identity on the wire."""

    name: str  # file stem, e.g. "creative_changed"
    version: int | None  # None for the current file, N for history/<name>/vN.avsc
    raw: Any  # the JSON as written
    parsed: Any  # fastavro's parsed form (its own named-type namespace)
    canonical: str  # Avro parsing canonical form
    fingerprint: bytes  # CRC-64-AVRO, 8 bytes little-endian (single-object encoding header)


def load_schema_file(path: Path, name: str, version: int | None) -> SchemaVersion:
    raw = json.loads(path.read_text())
    # Every file is parsed with its own named-schema table: two versions of one record share a
    # name, and fastavro would otherwise resolve the second against the first.
    parsed = parse_schema(raw, named_schemas={})
    canonical = to_parsing_canonical_form(parsed)
    return SchemaVersion(
        name=name,
        version=version,
        raw=raw,
        parsed=parsed,
        canonical=canonical,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )


_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaFamily:
    """A schema's current version and every released version, for reading old data."""

    current: SchemaVersion
    history: tuple[SchemaVersion, ...]

    @property
    def writers(self) -> dict[bytes, SchemaVersion]:
        """Every schema a message of this family may have been written with, by fingerprint."""
        known = {v.fingerprint: v for v in self.history}
        known[self.current.fingerprint] = self.current
        return known


def load_family(name: str, directory: Path | None = None) -> SchemaFamily:
    directory = directory or avro_dir()
    current = load_schema_file(directory / f"{name}.avsc", name, None)
    history_dir = directory / "history" / name
    history: list[SchemaVersion] = []
    if history_dir.is_dir():
        for path in sorted(history_dir.iterdir()):
            match = _VERSION_FILE.match(path.name)
            if match:
                history.append(load_schema_file(path, name, int(match.group(1))))
    history.sort(key=lambda v: v.version or 0)
    return SchemaFamily(current=current, history=tuple(history))


@cache
def family(name: str) -> SchemaFamily:
    """The schema family `name` from the configured avro/ directory (loaded once per process)."""
    return load_family(name)


def schema_names(directory: Path | None = None) -> list[str]:
    directory = directory or avro_dir()
    return sorted(p.stem for p in directory.glob("*.avsc"))
