"""Old data stays readable: every released version of a schema can be read with the current one.

Releasing a change to avro/<name>.avsc means adding it as avro/history/<name>/v<N+1>.avsc;
test_current_schema_is_released fails until that is done, and the compatibility test then
compares the new version with every older one.
"""
from __future__ import annotations

import copy
import json
import random

import pytest

from topics.codec import AvroCodec
from topics.compat import read_problems
from topics.schemas import SchemaFamily, family, load_schema_file, schema_names


@pytest.fixture(autouse=True)
def _seeded():
    random.seed(7)


@pytest.mark.parametrize("name", schema_names())
def test_current_schema_is_released(name):
    released = {v.fingerprint for v in family(name).history}
    assert family(name).current.fingerprint in released, (
        f"avro/{name}.avsc changed: copy it to avro/history/{name}/v{len(released) + 1}.avsc")


@pytest.mark.parametrize("name", schema_names())
def test_data_of_every_released_version_reads_with_the_current_schema(name):
    current = family(name).current
    for old in family(name).history:
        assert read_problems(old, current) == [], f"{name} v{old.version} data is no longer readable"


def _variant(tmp_path, name: str, change) -> object:
    raw = copy.deepcopy(family(name).current.raw)
    change(raw)
    path = tmp_path / f"{name}.avsc"
    path.write_text(json.dumps(raw))
    return load_schema_file(path, name, None)


def test_a_new_field_without_default_is_caught(tmp_path):
    breaking = _variant(tmp_path, "creative_changed", lambda raw: raw["fields"].append({"name": "brand", "type": "string"}))
    assert read_problems(family("creative_changed").current, breaking)


def test_a_changed_field_type_is_caught(tmp_path):
    def change(raw):
        next(f for f in raw["fields"] if f["name"] == "content_version")["type"] = "string"

    assert read_problems(family("creative_changed").current, _variant(tmp_path, "creative_changed", change))


def _drop_change_symbols(keep_default: bool):
    def change(raw):
        enum = next(f for f in raw["fields"] if f["name"] == "change")["type"]
        enum["symbols"] = ["CREATED", "UNKNOWN"]
        if not keep_default:
            del enum["default"]

    return change


def test_a_removed_enum_symbol_is_caught_when_the_enum_has_no_default(tmp_path):
    old = family("creative_changed").current
    assert read_problems(old, _variant(tmp_path, "creative_changed", _drop_change_symbols(False)), samples=200)


def test_a_removed_enum_symbol_reads_as_the_enum_default(tmp_path):
    """Why every enum of the contract has an UNKNOWN default: symbols can come and go safely."""
    old = family("creative_changed").current
    assert read_problems(old, _variant(tmp_path, "creative_changed", _drop_change_symbols(True)), samples=200) == []


def test_a_new_optional_field_is_compatible_and_old_messages_decode_into_it(tmp_path):
    def change(raw):
        raw["fields"].append({"name": "brand", "type": ["null", "string"], "default": None})

    evolved = _variant(tmp_path, "task_result", change)
    old = family("task_result").current
    assert read_problems(old, evolved) == []
    # A consumer on the new schema reads a message written with the old one, by fingerprint.
    reader = AvroCodec(SchemaFamily(current=evolved, history=(old,)))
    record = {"task_id": "t", "account_id": "a", "task_type": "sync_creatives", "status": "COMPLETED",
              "result_json": "{}", "completed_at": 1_700_000_000_000}
    decoded = reader.decode(AvroCodec("task_result").encode(record))
    assert decoded["brand"] is None and decoded["task_id"] == "t"
