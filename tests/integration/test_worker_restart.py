"""A restarted worker finds every row of its tables, whatever batches their changelog records
travelled in; and the end offsets table recovery reads up to are right on the broker in use
(the embedded Tansu answers ListOffsets with the last batch's base offset + 1)."""
from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from creative_sync.samples import display_creative, sync_request
from streams.transport import confirmed_ends
from tests.support import WorkerProcess, produce, read_topic, topic_name
from topics.catalogue import Codecs
from topics.events import LibraryCommand, LibraryOperation

ACCOUNT, COMMANDS, PER_COMMAND = "acct-restart", 3, 100


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


async def _walk_by_name(settings) -> tuple[list[str], int]:
    """Every creative name of ACCOUNT, page by page, as its owner (this worker) answers."""
    import aiohttp

    from streams.library.queries import AccountPage, merge, parse_query
    from topics.credentials import OWNER_QUERIES, SecretBox

    token = SecretBox.from_file(settings.secrets_key_path).token(OWNER_QUERIES)
    url = f"http://{settings.worker_host}:{settings.worker_port}/owners/library/page"
    names, cursor, total = [], None, 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        while True:
            query = parse_query({"sort": {"field": "name", "direction": "asc"},
                                 "pagination": {"max_results": 70, **({"cursor": cursor} if cursor else {})}})
            for _ in range(600):  # a worker still restoring its tables answers 503 (bounded: ~60 s)
                async with session.post(url, json={"accounts": [ACCOUNT], "query": query.as_json()}) as response:
                    if response.status != 503:
                        assert response.status == 200, await response.text()
                        pages = [AccountPage.from_json(p) for p in (await response.json())["pages"]]
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the owner was still restoring its tables after a minute")
            answer = merge(query, pages)
            names += [c["name"] for c in answer["creatives"]]
            total = answer["query_summary"]["total_matching"]
            if not answer["pagination"]["has_more"]:
                return names, total
            cursor = answer["pagination"]["cursor"]


@pytest.mark.parametrize("store", ["memory", pytest.param("rocksdb", marks=pytest.mark.rocksdb)])
async def test_a_worker_killed_after_multi_record_batches_restarts_with_every_row(ready_worker, settings, tmp_path, store):
    codecs = Codecs(prefix=settings.topic_prefix)
    commands = topic_name(settings, "library_commands")
    first = [command(codecs, f"first-{i}", i * PER_COMMAND, f"restart-key-first-{i:04d}") for i in range(COMMANDS)]
    await produce(settings.bootstrap_servers, commands, first)
    answers = await results(settings, codecs, {f"first-{i}" for i in range(COMMANDS)})
    assert all(c["action"] == "created" for answer in answers.values() for c in answer["creatives"])
    ready_worker.kill9()

    # RocksDB: faust's recovery refused to start a store holding records past the end the broker
    # reported. Memory: the table is rebuilt from the changelog, which must be read to its real end.
    restarted = WorkerProcess(settings, tmp_path / "worker-restarted.log").start()
    try:
        await asyncio.to_thread(restarted.wait_assigned)
        again = [command(codecs, f"again-{i}", i * PER_COMMAND, f"restart-key-again-{i:04d}") for i in range(COMMANDS)]
        await produce(settings.bootstrap_servers, commands, again)
        answers = await results(settings, codecs, {f"again-{i}" for i in range(COMMANDS)})
        actions = [c["action"] for answer in answers.values() for c in answer["creatives"]]
        assert len(actions) == COMMANDS * PER_COMMAND
        assert set(actions) == {"unchanged"}, "every creative was still in the restored table"
        # The ordered keys and counts came back too: the owner pages the library in name order (names
        # of different lengths: RocksDB orders the Avro keys by their bytes, length first).
        shown, total = await _walk_by_name(settings)
        assert len(shown) == len(set(shown)) == total == COMMANDS * PER_COMMAND
        assert shown == sorted(shown, key=lambda name: name.lower().encode()[:24])
        if store == "rocksdb":
            # With nothing on disk, the index and counts are derived from the creatives' changelog alone.
            restarted.kill9()
            fresh = settings.with_(data_dir=tmp_path / "fresh", secrets_key_file=settings.secrets_key_path)
            restarted = WorkerProcess(fresh, tmp_path / "worker-fresh.log").start()
            await asyncio.to_thread(restarted.wait_assigned)
            shown, total = await _walk_by_name(fresh)
            assert len(shown) == len(set(shown)) == total == COMMANDS * PER_COMMAND
            assert shown == sorted(shown, key=lambda name: name.lower().encode()[:24])
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
