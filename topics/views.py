"""Compacted topics read from the beginning into dicts (latest value per key), kept current, for
the gateway and the workers alike: the sales-agent registry and its credentials (small, global);
and which creatives' sync status changes (keys only).

Reads: the given topics (all partitions, no consumer group). Writes: nothing.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from topics.catalogue import topic
from topics.codec import AvroCodec
from topics.errors import CodecError
from topics.pacing import FetchPacing, pace

log = logging.getLogger(__name__)


async def assign_from_beginning(consumer: AIOKafkaConsumer, names: list[str]) -> list[TopicPartition]:
    """Every partition of `names` (waiting until the topics exist), read from the beginning."""
    partitions: list[TopicPartition] = []
    for name in names:
        numbers = consumer.partitions_for_topic(name)
        while not numbers:
            await consumer.force_metadata_update()
            numbers = consumer.partitions_for_topic(name)
            if not numbers:
                await asyncio.sleep(0.5)
        partitions += [TopicPartition(name, p) for p in sorted(numbers)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    return partitions


class CompactedView:
    """A compacted topic's latest value per key. Read by a ViewReader, which may read several views
    with one consumer (`start` reads this one alone)."""

    _from_end = False  # read from the end: only what changes from now on

    def __init__(self, bootstrap_servers: str, topic_name: str, codec: AvroCodec, key_of: Callable[[Any], str],
                 *, on_change: Callable[[str, Any], None] | None = None, pacing: FetchPacing | None = None) -> None:
        self._bootstrap, self._topic, self._codec = bootstrap_servers, topic_name, codec
        self._key_of, self._on_change, self._pacing = key_of, on_change, pacing
        self.items: dict[str, Any] = {}
        self.changed = asyncio.Event()  # set (and replaced) after every batch of records
        self._reader: ViewReader | None = None

    async def start(self) -> None:
        self._reader = ViewReader(self._bootstrap, [self], self._pacing)
        await self._reader.start()

    async def stop(self) -> None:
        if self._reader is not None:
            await self._reader.stop()

    def get(self, key: str) -> Any:
        return self.items.get(key)

    def apply(self, value: Any) -> None:
        """Take a value now (e.g. one this process just published), before it comes back from the topic."""
        key = self._key_of(value)
        self.items[key] = value
        if self._on_change:
            self._on_change(key, value)

    def _take(self, record: Any) -> None:
        value = self._value_of(record.value)
        if value is not None:
            self.apply(value)

    def _took(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def _value_of(self, raw: bytes) -> Any:
        """The decoded value, or None for a record that does not decode (skipped, with a warning)."""
        try:
            return self._codec.decode(raw)
        except CodecError:
            log.warning("skipping an unreadable record on %s", self._topic)
            return None

    def _key_of_record(self, record: Any, key_codec: AvroCodec) -> str | None:
        try:
            return key_codec.decode(record.key)
        except CodecError:
            log.warning("skipping a record with an unreadable key on %s", self._topic)
            return None


class ViewReader:
    """One consumer (no group) reading the topics of several views, each from its beginning (or
    its end), paced (topics.pacing): a process's views cost one idle consumer, not one each."""

    def __init__(self, bootstrap_servers: str, views: list[CompactedView], pacing: FetchPacing | None = None) -> None:
        self._bootstrap, self._pacing = bootstrap_servers, pacing or FetchPacing()
        self._views = {view._topic: view for view in views}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"views:{','.join(self._views)}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        failures = 0  # reconnections in a row: the wait between them doubles, up to 30 s
        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False,
                                        auto_offset_reset="earliest")
            try:
                await consumer.start()
                pace(consumer, self._pacing)
                partitions = await assign_from_beginning(consumer, list(self._views))
                from_end = [tp for tp in partitions if self._views[tp.topic]._from_end]
                if from_end:
                    await consumer.seek_to_end(*from_end)
                if failures:
                    log.info("views of %s read the broker again", ", ".join(self._views))
                    failures = 0
                while True:
                    batches = await consumer.getmany(timeout_ms=500)
                    took = set()
                    for tp, records in batches.items():
                        view = self._views[tp.topic]
                        for record in records:
                            view._take(record)
                        took.add(tp.topic)
                    for name in took:
                        self._views[name]._took()
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker went away: keep what we have and reconnect, backing off
                if not failures:  # said once per outage, not once per attempt
                    log.warning("views of %s lost the broker; reconnecting with backoff", ", ".join(self._views),
                                exc_info=True)
                failures += 1
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
            finally:
                await consumer.stop()


class RegistryView(CompactedView):
    """The sales agents: a record written under an older registration revision than the one
    held (a worker's discovery racing an update) is stale and ignored, in every process alike,
    since they all read the topic in the same order."""

    def apply(self, value: Any) -> None:
        current = self.items.get(self._key_of(value))
        if current is not None and value.revision < current.revision:
            return
        super().apply(value)


class AgentDirectory:
    """The sales-agent registry as every process sees it: agents and their (decrypted) secrets."""

    def __init__(self, bootstrap_servers: str, codecs: Any, topic_prefix: str, box: Any,
                 pacing: FetchPacing | None = None, *, also: tuple[CompactedView, ...] = ()) -> None:
        """`also`: other views to read with the same consumer (the worker's status changes)."""
        self.box = box
        self.agents = RegistryView(bootstrap_servers, topic("sales_agents").full_name(topic_prefix),
                                    codecs.value("sales_agents"), lambda a: a.sales_agent_id)
        self.credentials = CompactedView(bootstrap_servers, topic("sales_agent_credentials").full_name(topic_prefix),
                                         codecs.value("sales_agent_credentials"), lambda c: c.sales_agent_id)
        self._reader = ViewReader(bootstrap_servers, [self.agents, self.credentials, *also], pacing)

    async def start(self) -> None:
        await self._reader.start()

    async def stop(self) -> None:
        await self._reader.stop()

    def get(self, agent_id: str) -> Any:
        agent = self.agents.get(agent_id)
        return None if agent is None or agent.deleted else agent

    def secrets(self, agent_id: str) -> Any:
        sealed = self.credentials.get(agent_id)
        return self.box.open(sealed.ciphertext) if sealed is not None else None

    def active(self) -> list[Any]:
        return [a for a in self.agents.items.values() if not a.deleted]


class StatusChanges(CompactedView):
    """Which creatives' sync status changes from now on, from the sync_status topic's record keys:
    `on_change(account_id, creative_id)`. Holds nothing (the rows stay with the worker that owns
    them, streams/status/reads.py) and decodes no value; what changed before the start is not
    replayed (campaign health evaluates every campaign on its first heartbeat)."""

    _from_end = True

    def __init__(self, bootstrap_servers: str, codecs: Any, topic_prefix: str, on_change: Callable[[str, str], None]) -> None:
        super().__init__(bootstrap_servers, topic("sync_status").full_name(topic_prefix), codecs.value("sync_status"),
                         lambda value: "")
        self._key_codec, self._changed = codecs.key("sync_status"), on_change

    def apply(self, value: Any) -> None:
        raise TypeError("StatusChanges takes record keys from its topic only")

    def _take(self, record: Any) -> None:
        key = self._key_of_record(record, self._key_codec)
        if key is not None:
            self._changed(*key.split("/", 1))