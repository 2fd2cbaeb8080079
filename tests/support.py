"""Test helpers: topic readers and producers on the real broker (worker processes: creative_sync.processes)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from creative_sync.processes import WorkerProcess  # noqa: F401 - re-exported for tests
from creative_sync.settings import Settings
from topics.catalogue import topic


def topic_name(settings: Settings, role: str) -> str:
    return topic(role).full_name(settings.topic_prefix)


async def produce(bootstrap: str, topic_name: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        batch = [await producer.send(topic_name, key=key, value=value) for key, value in messages]
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic_name: str,
    *,
    until: Callable[[list[Any]], bool],
    decode: Callable[[Any], Any] = lambda record: record,
    timeout_s: float = 60.0,
) -> list[Any]:
    """Reads `topic_name` from the beginning until `until(decoded records)` holds; fails on timeout."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    records: list[Any] = []
    try:
        partitions = consumer.partitions_for_topic(topic_name)
        deadline = time.monotonic() + timeout_s
        while not partitions and time.monotonic() < deadline:
            await consumer.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic_name)
            await asyncio.sleep(0.1)
        assert partitions, f"topic {topic_name} does not exist"
        assignment = [TopicPartition(topic_name, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        while not until(records):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{topic_name}: condition not met after {timeout_s}s with {len(records)} records")
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for batch in batches.values():
                records.extend(decode(record) for record in batch)
        return records
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic_name: str) -> list[Any]:
    """Every record `topic_name` holds now (up to its end offsets), raw."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic_name, p) for p in sorted(consumer.partitions_for_topic(topic_name) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends, records = await consumer.end_offsets(partitions), []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def message_count(bootstrap: str, topic_name: str) -> int:
    """How many messages `topic_name` holds (sum of end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic_name, p) for p in consumer.partitions_for_topic(topic_name) or ()]
        return sum((await consumer.end_offsets(partitions)).values()) if partitions else 0
    finally:
        await consumer.stop()


async def group_progress(bootstrap: str, group: str, topic_name: str) -> dict[int, tuple[int, int | None]]:
    """Per partition of `topic_name`: (end offset, `group`'s committed offset or None)."""
    # A consumer of the group that never joins it: committed() is a plain OffsetFetch.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic_name, p) for p in sorted(consumer.partitions_for_topic(topic_name) or ())]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: (ends[tp], await consumer.committed(tp)) for tp in partitions}
    finally:
        await consumer.stop()


class MemoryTable:
    """A table of an indexed store for unit tests: its rows in a dict, with what the store derives
    from them (streams.stores.DerivedIndex), read as the processors read a table."""

    def __init__(self, table_name: str) -> None:
        import streams.campaigns.store  # noqa: F401 - the modules that register the derivations
        import streams.library.store  # noqa: F401
        import streams.notify.store  # noqa: F401
        from streams.stores import DERIVATIONS, DerivedIndex

        self.data = _IndexedRows(DerivedIndex(DERIVATIONS[table_name]))

    def put(self, key: Any, value: Any) -> None:
        """`table[key] = value` (None: the row goes)."""
        self.data.derived.apply([(key, self.data.get(key), value)])
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value


class _IndexedRows(dict):
    def __init__(self, derived: Any) -> None:
        super().__init__()
        self.derived = derived

    def index_range(self, partition: int, low: str, high: str, descending: bool):  # noqa: ANN201
        return self.derived.index_range(partition, low, high, descending)

    def account_counts(self, partition: int, account_id: str) -> dict[str, int]:
        return self.derived.account_counts(partition, account_id)

    def accounts(self, partition: int, account_in_partition: Callable[[str], bool]) -> list[str]:
        return self.derived.accounts(partition, account_in_partition)
