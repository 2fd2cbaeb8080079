"""The backbone on a real broker: HTTP → Avro event → faust worker process → table + output topics,
and poison messages dead-lettered while the stream goes on."""
from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from creative_sync.samples import display_creative, sync_request
from gateway.app import create_app
from streams.library.requests import payload_hash, task_id_for
from gateway.auth import PrincipalStore
from streams.library.logic import creative_key
from tests.support import message_count, produce, read_topic, topic_name
from topics.catalogue import TABLES, Codecs
from topics.codec import SINGLE_OBJECT_MAGIC
from topics.events import FailureStage, LibraryCommand, LibraryOperation, TaskStatus

CREATIVE = display_creative("c1", name="Holiday banner")


@pytest.fixture
async def gateway(topics_created, request):
    """A real HTTP server on loopback. The budget is generous so that answers complete on a loaded
    machine; a test without a worker marks itself `short_budget` and gets `submitted` quickly."""
    store = PrincipalStore(topics_created.principals_file)
    _, token = store.add("buyer", ["acct-1"])
    budget = 0.5 if request.node.get_closest_marker("short_budget") else 20
    client = TestClient(TestServer(create_app(topics_created.with_(request_budget_s=budget), principals=store)))
    await client.start_server()
    client.token = token
    yield client
    await client.close()


async def test_http_request_becomes_avro_event_processed_into_table_and_output(gateway, ready_worker, settings):
    codecs = Codecs(prefix=settings.topic_prefix)
    for _ in range(100):  # ready: the broker answers and the read model has caught up
        if (await gateway.get("/readyz")).status == 200:
            break
        await asyncio.sleep(0.1)
    assert (await (await gateway.get("/readyz")).json())["read_model_caught_up"] is True
    body = sync_request("acct-1", [CREATIVE], idempotency_key="idem-key-0000000001", context={"trace": "t-1"})
    response = await gateway.post("/api/v1/sync_creatives", headers={"Authorization": f"Bearer {gateway.token}"}, json=body)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer == {"status": "completed", "creatives": [{"creative_id": "c1", "action": "created"}], "context": {"trace": "t-1"}}
    task_id = task_id_for("acct-1", "idem-key-0000000001", payload_hash(body))

    [command] = await read_topic(settings.bootstrap_servers, topic_name(settings, "library_commands"), until=lambda r: len(r) >= 1)
    assert command.value[:2] == SINGLE_OBJECT_MAGIC, "Avro single-object encoding on the wire"
    assert codecs.value("library_commands").decode(command.value).command_id == task_id

    changes = await read_topic(settings.bootstrap_servers, topic_name(settings, "creative_state"), until=lambda r: len(r) >= 1,
                               decode=lambda r: (codecs.key("creative_state").decode(r.key), codecs.value("creative_state").decode(r.value)))
    [(key, change)] = changes
    assert key == "acct-1/c1" and change.change.value == "CREATED" and change.content_version == 1

    results = await read_topic(settings.bootstrap_servers, topic_name(settings, "task_results"), until=lambda r: len(r) >= 1,
                               decode=lambda r: codecs.value("task_results").decode(r.value))
    assert results[0].task_id == task_id and results[0].status is TaskStatus.COMPLETED
    assert json.loads(results[0].result_json) == {"creatives": [{"creative_id": "c1", "action": "created"}]}

    table = TABLES[0]
    changelog = await read_topic(
        settings.bootstrap_servers, table.changelog_name(settings.app_id), until=lambda r: len(r) >= 1,
        decode=lambda r: (codecs.key_codec("string_key", "k").decode(r.key), codecs.schema("stored_creative").decode(r.value)))
    [(table_key, stored)] = changelog
    assert table_key == creative_key("acct-1", "c1")
    assert stored.content_version == 1 and json.loads(stored.creative_json)["name"] == "Holiday banner"
    assert stored.last_command_id == task_id


async def test_poison_messages_are_dead_lettered_and_the_next_message_is_processed(worker, settings):
    codecs = Codecs(prefix=settings.topic_prefix)
    commands = topic_name(settings, "library_commands")
    key = codecs.key("library_commands").encode("acct-9")  # one key: one partition, strict order
    good = LibraryCommand(command_id="cmd-good", account_id="acct-9", principal_id="p", operation=LibraryOperation.SYNC_CREATIVES,
                          request_json=json.dumps(sync_request("acct-9", [CREATIVE])), received_at=datetime.now(UTC))
    unprocessable = good.model_copy(update={"command_id": "cmd-bad", "request_json": "{not json"})
    garbage = b"\x00\x01definitely not avro"
    await produce(settings.bootstrap_servers, commands, [
        (key, garbage),
        (key, codecs.value("library_commands").encode(unprocessable)),
        (key, codecs.value("library_commands").encode(good)),
    ])

    letters = await read_topic(settings.bootstrap_servers, topic_name(settings, "dead_letters"), until=lambda r: len(r) >= 2,
                               decode=lambda r: codecs.value("dead_letters").decode(r.value))
    decode_failure, process_failure = sorted(letters, key=lambda letter: letter.source_offset)
    assert decode_failure.stage is FailureStage.DECODE and decode_failure.raw_value == garbage
    assert decode_failure.source_topic == commands and decode_failure.raw_key == key
    assert process_failure.stage is FailureStage.PROCESS and process_failure.error_type == "JSONDecodeError"
    assert process_failure.source_partition == decode_failure.source_partition
    assert process_failure.source_offset == decode_failure.source_offset + 1
    assert process_failure.processor == "library"

    results = await read_topic(settings.bootstrap_servers, topic_name(settings, "task_results"), until=lambda r: len(r) >= 1,
                               decode=lambda r: codecs.value("task_results").decode(r.value))
    assert [r.task_id for r in results] == ["cmd-good"]
    assert "creative_sync_worker_dead_letters_total" in worker.metrics()


@pytest.mark.short_budget
async def test_rejected_requests_publish_nothing(gateway, settings):
    headers = {"Authorization": f"Bearer {gateway.token}"}
    good = sync_request("acct-1", [CREATIVE], idempotency_key="idem-key-0000000002")
    for body, status in [({**good, "creatives": [CREATIVE, CREATIVE]}, 400), ({**good, "idempotency_key": "x"}, 400),
                         ({**good, "account": {"account_id": "acct-2"}}, 403)]:
        response = await gateway.post("/api/v1/sync_creatives", headers=headers, json=body)
        assert response.status == status
    assert (await gateway.post("/api/v1/sync_creatives", json=good)).status == 401
    assert await message_count(settings.bootstrap_servers, topic_name(settings, "library_commands")) == 0
    assert (await gateway.post("/api/v1/sync_creatives", headers=headers, json=good)).status == 202
    assert await message_count(settings.bootstrap_servers, topic_name(settings, "library_commands")) == 1
