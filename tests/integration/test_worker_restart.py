"""A restarted worker finds every row of its tables, whatever batches their changelog records
travelled in; and the end offsets table recovery reads up to are right on the broker in use
(the embedded Tansu answers ListOffsets with the last batch's base offset + 1)."""
from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from creative_sync.samples import display_creative, sync_request
from streams.transport import confirmed_ends
from tests.support import WorkerProcess, produce, read_topic, topic_name
from topics.catalogue import Codecs
from topics.events import (LibraryCommand, LibraryOperation, Notification, NotificationCommand, NotificationOperation,
                           Urgency)

ACCOUNT, COMMANDS, PER_COMMAND = "acct-restart", 3, 100
NOTES, READ = 150, 10


def command(codecs: Codecs, command_id: str, first: int, key: str) -> tuple[bytes, bytes]:
    """One command of PER_COMMAND creatives: its table rows leave in one producer batch."""
    creatives = [display_creative(f"c{n}") for n in range(first, first + PER_COMMAND)]
    body = sync_request(ACCOUNT, creatives, idempotency_key=key)
    event = LibraryCommand(command_id=command_id, account_id=ACCOUNT, principal_id="p", operation=LibraryOperation.SYNC_CREATIVES,
                           request_json=json.dumps(body), received_at=datetime.now(UTC))
    return codecs.key("library_commands").encode(ACCOUNT), codecs.value("library_commands").encode(event)


async def results(settings, codecs: Codecs, wanted: set[str]) -> dict[str, dict]:
    decode = lambda r: codecs.value("task_results").decode(r.value)  # noqa: E731
    found = await read_topic(settings.bootstrap_servers, topic_name(settings, "task_results"), decode=decode, timeout_s=120,
                             until=lambda rs: wanted <= {r.task_id for r in rs})
    return {r.task_id: json.loads(r.result_json) for r in found if r.task_id in wanted}


async def _ask_owner(settings, path: str, body: dict) -> dict:
    """POST an owner's query to this worker, waiting while it restores its tables (503, ~60 s)."""
    import aiohttp

    from topics.credentials import OWNER_QUERIES, SecretBox

    token = SecretBox.from_file(settings.secrets_key_path).token(OWNER_QUERIES)
    url = f"http://{settings.worker_host}:{settings.worker_port}{path}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        for _ in range(600):
            async with session.post(url, json=body) as response:
                if response.status != 503:
                    assert response.status == 200, await response.text()
                    return await response.json()
            await asyncio.sleep(0.1)
    raise AssertionError("the owner was still restoring its tables after a minute")


async def _notifications(settings) -> tuple[list[str], list[str], int]:
    """ACCOUNT's notifications newest first, page by page, as their owner answers; and the read ones, and the unread count."""
    ids, read, cursor = [], [], None
    while True:
        answer = await _ask_owner(settings, "/owners/notifications/page", {
            "account_id": ACCOUNT, "filters": {}, "max_results": 40, "cursor": cursor})
        ids += [n["notification_id"] for n in answer["notifications"]]
        read += [n["notification_id"] for n in answer["notifications"] if n["read"]]
        cursor = answer["cursor"]
        if cursor is None:
            return ids, read, answer["unread"]


async def _where_the_group_stands(settings, topic: str) -> str:
    """The worker group's committed offsets and the ends of `topic`, per partition (a diagnostic;
    the consumer asks the group's offsets without joining it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=settings.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(partitions)
        return "; ".join([f"{tp.partition}: committed {await consumer.committed(tp)}, end {ends[tp]}" for tp in partitions])
    finally:
        await consumer.stop()


async def _notify(settings, codecs: Codecs) -> None:
    """NOTES notifications of ACCOUNT, READ of them then marked read (through the commands topic)."""
    now = datetime.now(UTC)
    notes = [Notification(notification_id=f"note-{i:04d}", account_id=ACCOUNT, type="creative.approved", urgency=Urgency.LOW,
                          message=f"approved {i}", created_at=now.replace(microsecond=0) - timedelta(seconds=i))
             for i in range(NOTES)]
    key = codecs.key("notifications").encode(ACCOUNT)
    await produce(settings.bootstrap_servers, topic_name(settings, "notifications"),
                  [(key, codecs.value("notifications").encode(n)) for n in notes])
    marked = NotificationCommand(command_id="mark-restart", account_id=ACCOUNT, operation=NotificationOperation.MARK_READ,
                                 notification_ids=[f"note-{i:04d}" for i in range(READ)], requested_at=now)
    for _ in range(600):  # marks apply to the notifications already kept: wait until they all are
        if len((await _notifications(settings))[0]) == NOTES:
            break
        await asyncio.sleep(0.1)
    await produce(settings.bootstrap_servers, topic_name(settings, "notification_commands"),
                  [(key, codecs.value("notification_commands").encode(marked))])
    answer = await results(settings, codecs, {"mark-restart"})
    assert answer["mark-restart"]["marked_read"] == [f"note-{i:04d}" for i in range(READ)]


async def _kept_notifications(settings) -> None:
    ids, read, unread = await _notifications(settings)
    assert ids == [f"note-{i:04d}" for i in range(NOTES)]  # newest first, each once
    assert sorted(read) == [f"note-{i:04d}" for i in range(READ)] and unread == NOTES - READ


async def _walk_by_name(settings) -> tuple[list[str], int]:
    """Every creative name of ACCOUNT, page by page, as its owner (this worker) answers."""
    from streams.library.queries import AccountPage, merge, parse_query

    names, cursor = [], None
    while True:
        query = parse_query({"sort": {"field": "name", "direction": "asc"},
                             "pagination": {"max_results": 70, **({"cursor": cursor} if cursor else {})}})
        answer = await _ask_owner(settings, "/owners/library/page", {"accounts": [ACCOUNT], "query": query.as_json()})
        answer = merge(query, [AccountPage.from_json(p) for p in answer["pages"]])
        names += [c["name"] for c in answer["creatives"]]
        if not answer["pagination"]["has_more"]:
            return names, answer["query_summary"]["total_matching"]
        cursor = answer["pagination"]["cursor"]


@pytest.mark.parametrize("store", ["memory", pytest.param("rocksdb", marks=pytest.mark.rocksdb)])
async def test_a_worker_killed_after_multi_record_batches_restarts_with_every_row(ready_worker, settings, tmp_path, store):
    codecs = Codecs(prefix=settings.topic_prefix)
    commands = topic_name(settings, "library_commands")
    first = [command(codecs, f"first-{i}", i * PER_COMMAND, f"restart-key-first-{i:04d}") for i in range(COMMANDS)]
    await produce(settings.bootstrap_servers, commands, first)
    answers = await results(settings, codecs, {f"first-{i}" for i in range(COMMANDS)})
    assert all(c["action"] == "created" for answer in answers.values() for c in answer["creatives"])
    await _notify(settings, codecs)
    ready_worker.kill9()

    # RocksDB: faust's recovery refused to start a store holding records past the end the broker
    # reported. Memory: the table is rebuilt from the changelog, which must be read to its real end.
    restarted = WorkerProcess(settings, tmp_path / "worker-restarted.log").start()
    try:
        await asyncio.to_thread(restarted.wait_assigned)
        again = [command(codecs, f"again-{i}", i * PER_COMMAND, f"restart-key-again-{i:04d}") for i in range(COMMANDS)]
        await produce(settings.bootstrap_servers, commands, again)
        try:
            answers = await results(settings, codecs, {f"again-{i}" for i in range(COMMANDS)})
        except TimeoutError as timeout:  # seen once in CI (session 20), not since: say where the group stood
            raise AssertionError(f"{timeout}; {await _where_the_group_stands(settings, commands)}") from timeout
        actions = [c["action"] for answer in answers.values() for c in answer["creatives"]]
        assert len(actions) == COMMANDS * PER_COMMAND
        assert set(actions) == {"unchanged"}, "every creative was still in the restored table"
        # The ordered keys and counts came back too: the owner pages the library in name order (names
        # of different lengths: RocksDB orders the Avro keys by their bytes, length first).
        shown, total = await _walk_by_name(settings)
        assert len(shown) == len(set(shown)) == total == COMMANDS * PER_COMMAND
        assert shown == sorted(shown, key=lambda name: name.lower().encode()[:24])
        await _kept_notifications(settings)  # rows, flags, order and counts
        if store == "rocksdb":
            # With nothing on disk, the index and counts are derived from the creatives' changelog alone.
            restarted.kill9()
            fresh = settings.with_(data_dir=tmp_path / "fresh", secrets_key_file=settings.secrets_key_path)
            restarted = WorkerProcess(fresh, tmp_path / "worker-fresh.log").start()
            await asyncio.to_thread(restarted.wait_assigned)
            shown, total = await _walk_by_name(fresh)
            assert len(shown) == len(set(shown)) == total == COMMANDS * PER_COMMAND
            assert shown == sorted(shown, key=lambda name: name.lower().encode()[:24])
            await _kept_notifications(fresh)
    finally:
        restarted.stop(grace_s=0)


async def test_confirmed_end_offsets_count_every_record_of_the_last_batch(kafka_bootstrap, namespace):
    name = f"t{namespace}.ends"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(3):  # three batches of five records in partition 0; partition 1 stays empty
            sent = [await producer.send(name, b"v", partition=0) for _ in range(5)]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    full, empty = TopicPartition(name, 0), TopicPartition(name, 1)
    probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await probe.start()
    try:
        listed = await probe.end_offsets([full, empty])
        assert listed[empty] == 0 and 11 <= listed[full] <= 15  # Tansu: 11, Kafka: 15
        assert await confirmed_ends(probe, listed) == {full: 15, empty: 0}
    finally:
        await probe.stop()
