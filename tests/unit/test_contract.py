"""The event contract: every schema round-trips, models and schemas agree, bad bytes fail typed."""
from __future__ import annotations

import json
import random

import pytest
from fastavro.utils import generate_many
from hypothesis import given, settings
from hypothesis import strategies as st

from topics.catalogue import TABLES, TOPICS, Codecs, all_specs
from topics.codec import SINGLE_OBJECT_MAGIC, AvroCodec, ModelCodec
from topics.errors import CodecError, MalformedMessageError, RecordEncodeError, UnknownSchemaError
from topics.events import MODELS, LibraryCommand
from topics.schemas import family, schema_names

RECORD_SCHEMAS = sorted(MODELS)


@pytest.fixture(autouse=True)
def _seeded():
    random.seed(20261122)  # fastavro's generator draws from `random`: same samples every run


def test_every_schema_file_has_a_model_and_every_model_a_schema():
    assert set(schema_names()) == set(MODELS) | {"string_key"}


@pytest.mark.parametrize("name", RECORD_SCHEMAS)
def test_every_schema_round_trips_generated_records(name):
    codec = AvroCodec(name)
    for record in generate_many(family(name).current.parsed, 30):
        encoded = codec.encode(record)
        assert codec.encode(codec.decode(encoded)) == encoded  # byte-exact: nothing lost either way


@pytest.mark.parametrize("name", RECORD_SCHEMAS)
def test_model_fields_match_schema_fields(name):
    schema_fields = family(name).current.raw["fields"]
    model_fields = MODELS[name].model_fields
    assert [f["name"] for f in schema_fields] == list(model_fields), "same fields, same order"
    for field in schema_fields:
        required_in_model = model_fields[field["name"]].is_required()
        assert required_in_model == ("default" not in field), f"{name}.{field['name']}: optional in both or neither"


@pytest.mark.parametrize("name", RECORD_SCHEMAS)
def test_every_avro_record_is_a_valid_model_and_back(name):
    codec = ModelCodec(name, MODELS[name])
    for record in generate_many(family(name).current.parsed, 30):
        model = codec.decode(AvroCodec(name).encode(record))
        assert isinstance(model, MODELS[name])
        assert codec.decode(codec.encode(model)) == model


def test_messages_carry_the_single_object_header_with_the_schema_fingerprint():
    encoded = AvroCodec("string_key").encode("acct-1")
    assert encoded[:2] == SINGLE_OBJECT_MAGIC
    assert encoded[2:10] == family("string_key").current.fingerprint


def test_catalogue_names_every_topic_of_the_design_once():
    roles = {t.role for t in TOPICS}
    assert roles == {"library_commands", "creative_state", "content_changes", "sync_triggers", "sync_jobs", "sync_results",
                     "approval_events", "sync_status",
                     "sales_agents", "sales_agent_credentials", "campaigns", "campaign_health", "notifications", "notification_state",
                     "notification_commands", "task_results", "principals", "dead_letters"}
    names = [s.name for s in all_specs("app")]
    assert len(names) == len(set(names))
    for spec in TOPICS:
        assert spec.value_schema in MODELS and spec.cleanup in ("delete", "compact") and spec.partitions >= 1
    for table in TABLES:
        assert table.source in roles


def test_codecs_are_built_once_per_topic():
    codecs = Codecs()
    assert codecs.value("library_commands") is codecs.value("library_commands")
    assert codecs.key("library_commands").decode(codecs.key("library_commands").encode("a/b")) == "a/b"


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"{}", b"\xc3\x01\x00", b"\xc3\x01" + b"\xff" * 8 + b"x",
                                     b"hello world", b"\x00\x00\x00\x00\x01abc"])
def test_garbage_bytes_raise_a_typed_error(garbage):
    with pytest.raises((MalformedMessageError, UnknownSchemaError)):
        AvroCodec("library_command").decode(garbage)


def test_a_truncated_valid_message_is_malformed():
    codec = Codecs().value("library_commands")
    encoded = AvroCodec("library_command").encode(next(iter(generate_many(family("library_command").current.parsed, 1))))
    with pytest.raises(MalformedMessageError):
        codec.decode(encoded[:-3])
    with pytest.raises(MalformedMessageError):
        codec.decode(encoded + b"extra")


def test_a_record_that_does_not_fit_raises_a_typed_error():
    with pytest.raises(RecordEncodeError):
        AvroCodec("library_command").encode({"command_id": 42})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_untyped_errors(data):
    codec = ModelCodec("library_command", LibraryCommand)
    try:
        codec.decode(data)
    except CodecError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=120))
def test_valid_header_with_random_body_fails_typed(body):
    header = SINGLE_OBJECT_MAGIC + family("task_result").current.fingerprint
    try:
        AvroCodec("task_result").decode(header + body)
    except CodecError:
        pass


def test_schemas_are_valid_json_with_docs():
    for name in RECORD_SCHEMAS:
        raw = family(name).current.raw
        assert raw["type"] == "record" and raw.get("doc"), f"{name} documents itself"
        json.dumps(raw)
