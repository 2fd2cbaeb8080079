"""faust's aiokafka transport with the consumer's fetch wait paced, end offsets that hold on the
embedded broker, and the commit guards below.

faust hard-codes fetch_max_wait_ms=1500 in its worker consumer; on a quiet partition every
hop of the pipeline then waited ~400 ms p50 / ~760 ms p99 for nothing. Registered as the
`creative-sync-kafka://` broker scheme.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import aiokafka
from aiokafka import TopicPartition
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

from topics.pacing import pace

SCHEME = "creative-sync-kafka"


class TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The worker's consumer, its fetch wait paced by `app.fetch_pacing` (topics.pacing): short
    while records flow, long when idle."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it builds its fetcher in start(), after this returns:
        # its first fetches, before `pace` below takes over.
        consumer._fetch_max_wait_ms = self.app.fetch_pacing.busy_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        pace(self._consumer, self.app.fetch_pacing)


async def confirmed_ends(probe: aiokafka.AIOKafkaConsumer, ends: Mapping[Any, int | None],
                         timeout_s: float = 10.0) -> dict[Any, int | None]:
    """`ends` (from ListOffsets) raised to the high watermark a fetch of each partition's last
    record batch reports; a partition that does not answer in time keeps its ListOffsets end."""
    confirmed = dict(ends)
    probed = [tp for tp, end in ends.items() if end]
    if not probed:
        return confirmed
    probe.assign([TopicPartition(tp.topic, tp.partition) for tp in probed])
    for tp in probed:
        probe.seek(TopicPartition(tp.topic, tp.partition), ends[tp] - 1)
    deadline = asyncio.get_running_loop().time() + timeout_s
    waiting = set(probed)
    while waiting and asyncio.get_running_loop().time() < deadline:
        await probe.getmany(timeout_ms=200)
        for tp in list(waiting):
            highwater = probe.highwater(TopicPartition(tp.topic, tp.partition))
            if highwater is not None:
                confirmed[tp] = max(ends[tp], highwater)
                waiting.discard(tp)
    return confirmed


class ReadOffsets(defaultdict):
    """faust's per-partition read offsets (the consumer drops fetched records below them), with holds.

    After a seek back, faust's fetch loop goes on delivering the batch it fetched before the seek
    and raises the read offset past the rewound position, so the records fetched again are dropped
    as already read. A hold keeps the rewound offset until the fetch loop reaches it again.
    """

    def __init__(self) -> None:
        super().__init__(lambda: None)
        self._held: dict[Any, int] = {}
        self._fetched: dict[Any, int] = {}  # highest offset the fetch loop has delivered, per partition

    def fetched(self, tp: Any) -> int:
        return self._fetched.get(tp, -1)

    def hold(self, tp: Any, offset: int) -> None:
        self._held[tp] = offset
        super().__setitem__(tp, offset)

    def __setitem__(self, tp: Any, offset: int | None) -> None:
        if offset is not None and offset > self._fetched.get(tp, -1):
            self._fetched[tp] = offset
        held = self._held.get(tp)
        if held is not None:
            if offset is None or offset > held:
                return  # a record of the batch fetched before the rewind
            del self._held[tp]
        super().__setitem__(tp, offset)

    def update(self, *args: Any, **kwargs: Any) -> None:  # faust's seek to committed offsets (rebalance)
        for tp, offset in dict(*args, **kwargs).items():
            self._held.pop(tp, None)
            super().__setitem__(tp, offset)

    def pop(self, tp: Any, *default: Any) -> Any:
        self._held.pop(tp, None)
        return super().pop(tp, *default)


class TunedConsumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = ReadOffsets()
        self._guarded = False
        self._handled: dict[int, Any] = {}  # id -> message a processor has seen (kept alive until acked)

    def guard(self) -> None:
        """From now on, commit offsets only of messages a processor has seen (see ack)."""
        self._guarded = True

    def handled(self, message: Any) -> None:
        self._handled[id(message)] = message

    def ack(self, message: Any) -> bool:
        if self._guarded and self._handled.pop(id(message), None) is None:
            # faust's stream skips the events it receives while its flow is stopped (rebalance,
            # recovery) and acks them, counting on a seek back to the committed offset; the commit
            # then passed them and they were lost (tests/e2e/test_worker_crash.py). An event no
            # processor saw is never acked: the commit waits until it comes again.
            self._unacked_messages.discard(message)
            return False
        return super().ack(message)

    async def highwaters(self, *partitions: Any) -> Mapping[Any, int]:
        """The end offsets of `partitions`, which table recovery reads the changelogs up to.

        The embedded broker (Tansu) answers ListOffsets with the base offset of the last record
        batch + 1, not the last offset + 1: with several records in the last batch, recovery
        stopped short of them and faust's consistency check refused to start a RocksDB store that
        had them (a restart after kill -9 crashed). A fetch's high watermark is right there, so the
        end is confirmed by fetching the last batch; on Kafka both agree and this costs one fetch.
        (The probe runs here, on the worker's loop: an aiokafka consumer stopped inside faust's
        consumer thread never finished stopping.)
        """
        ends = dict(await super().highwaters(*partitions))
        if not any(ends.values()):
            return ends
        conf, transport = self.app.conf, self.transport
        probe = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=faust_aiokafka.server_list(transport.url, transport.default_port),
            enable_auto_commit=False,
            **faust_aiokafka.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context))
        await probe.start()
        try:
            return await confirmed_ends(probe, ends)
        finally:
            await probe.stop()

    def _new_consumer_thread(self) -> TunedConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # faust measures gaps from its read offset, which a seek moves back while the fetch loop
        # still delivers the batch it fetched before: such a "gap" covers events that exist, and
        # faust would commit past them unprocessed. Only offsets beyond everything fetched, and
        # before the event at hand (acked on its own), can be a real gap (compaction, markers).
        offset_from = max(offset_from, self._read_offset.fetched(tp) + 1)
        if offset_from <= offset_to - 1:
            await super()._add_gap(tp, offset_from, offset_to - 1)

    def committed_offset(self, tp: Any) -> int | None:
        return self._committed_offset.get(tp)

    def known_gap(self, tp: Any, start: int, end: int) -> bool:
        """Whether the fetch loop itself saw offsets start..end-1 missing (compaction, markers)."""
        return bool(self._gap[tp].overlaps(start, end))

    async def rewind(self, tp: Any, offset: int) -> None:
        """Fetch `tp` again from `offset` (see streams.runtime.PartitionOrder)."""
        await self.seek(tp, offset)
        self._read_offset.hold(tp, offset)


class TunedTransport(faust_aiokafka.Transport):
    Consumer = TunedConsumer


drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:TunedTransport")
