"""What every processor shares: decode with the contract's codec, hand the value to the
processor, and turn any failure into a dead letter so that the stream goes on.

Reads: the processor's source topic (raw bytes). Writes: the dead-letter topic.
"""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from enum import Enum
from datetime import UTC, datetime
from typing import Any

from faust.stores.base import SerializedStore
from faust.streams import _current_event  # the context faust's tables read the changelog partition from
from faust.streams import _tracks_buffer_agen  # what lets the stream close a take it stops (see take_gathered)
from faust.types import EventT, Message, StreamT, TopicT

from streams.metrics import WorkerMetrics
from streams.transport import TunedConsumer
from topics.catalogue import Codecs
from topics.codec import AvroCodec
from topics.errors import CodecError
from topics.events import DeadLetter, FailureStage

log = logging.getLogger(__name__)

Handler = Callable[[Any, EventT], Awaitable[None]]


class Admission(Enum):
    PROCESS = "process"
    SKIP = "skip"  # a later event while the missing ones are being fetched again
    REWIND = "rewind"  # events went missing before this one: fetch again from `expected`


class PartitionOrder:
    """Guards per-partition order inside one worker (pure: offsets in, decisions out).

    faust can lose a few fetched events when a restart's recovery races its seek to the committed
    offsets (kill -9 in tests/e2e/test_worker_crash.py showed 4 events of one partition skipped
    and the partition's commit stuck behind them). Processing the next event anyway would apply a
    later command before an earlier one; instead the partition is rewound to the first missing
    offset and later events are skipped until the missing ones come again. Holes the consumer
    itself saw (transaction markers, compaction) are `known_gap` and are not holes here.
    """

    def __init__(self) -> None:
        self._generation: int | None = None
        self._next: dict[Any, int] = {}
        self._rewinding: dict[Any, int] = {}

    def admit(self, tp: Any, offset: int, *, generation: int, committed: int | None,
              known_gap: Callable[[int, int], bool] = lambda start, end: False) -> tuple[Admission, int]:
        if generation != self._generation:  # a rebalance: the consumer seeks to committed offsets again
            self._generation, self._next, self._rewinding = generation, {}, {}
        target = self._rewinding.get(tp)
        if target is not None:
            if offset > target:
                return Admission.SKIP, target
            del self._rewinding[tp]
        else:
            expected = self._next.get(tp, committed)
            if expected is not None and offset > expected and not known_gap(expected, offset):
                self._rewinding[tp] = expected
                return Admission.REWIND, expected
        self._next[tp] = max(self._next.get(tp, offset + 1), offset + 1)
        return Admission.PROCESS, offset


def dead_letter_for(message: Message, stage: FailureStage, processor: str, exc: BaseException, now: datetime) -> DeadLetter:
    """The dead letter recording `message` and why it failed (pure)."""
    timestamp = getattr(message, "timestamp", None)
    return DeadLetter(
        dead_letter_id=f"{message.topic}/{message.partition}/{message.offset}/{stage.value}",
        source_topic=message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
        stage=stage,
        processor=processor,
        error_type=type(exc).__name__,
        error_message=str(exc)[:2000],
        raw_key=message.key if isinstance(message.key, bytes) else None,
        raw_value=message.value if isinstance(message.value, bytes) else None,
        source_timestamp=datetime.fromtimestamp(timestamp, UTC) if timestamp else None,
        failed_at=now,
    )


@dataclass
class DeadLetters:
    topic: TopicT
    codecs: Codecs
    metrics: WorkerMetrics

    async def record(self, message: Message, stage: FailureStage, processor: str, exc: BaseException) -> None:
        letter = dead_letter_for(message, stage, processor, exc, datetime.now(UTC))
        log.warning("dead letter %s from %s: %s: %s", letter.dead_letter_id, processor, letter.error_type, letter.error_message)
        await self.topic.send(
            key=self.codecs.key("dead_letters").encode(letter.source_topic),
            value=self.codecs.value("dead_letters").encode(letter),
        )
        self.metrics.dead_letters.labels(processor, stage.value).inc()


class _Intake:
    """What happens to every event before a processor sees it: the partition-order guard, the
    commit guard, the hop timing and decoding (a value that does not decode is dead-lettered)."""

    SKIP = object()

    def __init__(self, stream: StreamT, processor: str, codec: AvroCodec, dead_letters: DeadLetters,
                 metrics: WorkerMetrics, wanted: Callable[[EventT], bool] | None = None) -> None:
        self.processor, self.codec, self.dead_letters, self.metrics = processor, codec, dead_letters, metrics
        self.wanted = wanted
        self.processed = metrics.events.labels(processor, "processed")
        self.failed = metrics.events.labels(processor, "dead_lettered")
        self.passed_over = metrics.events.labels(processor, "passed_over")  # not wanted: nothing to do
        self.timing = metrics.processing.labels(processor)
        self.hop = metrics.hop_latency.labels(processor)
        self.order = PartitionOrder()
        self.consumer: TunedConsumer = stream.app.consumer  # streams.transport: only what a processor saw gets committed
        self.consumer.guard()

    async def admit(self, event: EventT) -> Any:
        """The decoded value, or SKIP (out of order, or dead-lettered)."""
        message, consumer = event.message, self.consumer
        admission, offset = self.order.admit(
            message.tp, message.offset, generation=message.generation_id, committed=consumer.committed_offset(message.tp),
            known_gap=lambda start, end, tp=message.tp: consumer.known_gap(tp, start, end))
        if admission is not Admission.PROCESS:
            # Left unhandled, hence never acked: the commit cannot pass it before it comes again.
            if admission is Admission.REWIND:
                log.warning("%s: events %s[%s] %s..%s never arrived; fetching them again", self.processor, message.topic,
                            message.partition, offset, message.offset - 1)
                self.metrics.rewinds.labels(self.processor).inc()
                await consumer.rewind(message.tp, offset)
            return self.SKIP
        consumer.handled(message)
        if message.timestamp:
            self.hop.observe(max(0.0, time.time() - message.timestamp))
        if self.wanted is not None and not self.wanted(event):
            self.passed_over.inc()
            return self.SKIP  # handled: nothing to do with it here
        try:
            return self.codec.decode(message.value)
        except CodecError as exc:
            await self.fail(event, FailureStage.DECODE, exc)
            return self.SKIP

    async def fail(self, event: EventT, stage: FailureStage, exc: BaseException) -> None:
        await self.dead_letters.record(event.message, stage, self.processor, exc)
        self.failed.inc()


async def consume(
    stream: StreamT, *, processor: str, codec: AvroCodec, handle: Handler, dead_letters: DeadLetters, metrics: WorkerMetrics
) -> None:
    """The body of a processor's agent: every event is handled or dead-lettered, never lost or fatal."""
    intake = _Intake(stream, processor, codec, dead_letters, metrics)
    async for event in stream.events():
        value = await intake.admit(event)
        if value is intake.SKIP:
            continue
        started = time.perf_counter()
        try:
            await handle(value, event)
        except Exception as exc:  # a processing bug must not stop the partition: record it and go on
            message = event.message
            log.exception("%s failed on %s/%s/%s", processor, message.topic, message.partition, message.offset)
            await intake.fail(event, FailureStage.PROCESS, exc)
            continue
        intake.processed.inc()
        intake.timing.observe(time.perf_counter() - started)


BatchHandler = Callable[[list[tuple[Any, EventT]]], Awaitable[None]]


def take_wait(now: float, first_at: float, last_at: float, *, within: float, quiet: float | None = None) -> float:
    """How much longer a take gathers, in seconds (0: hand it over now): at most `within` from its
    first event; with `quiet`, no longer than `quiet` after its latest. A burst (ten agents
    answering about one creative) then makes one take soon after it ends, while a steady flow
    (the answers of a large sync, seconds apart for one creative) is gathered for `within`."""
    wait = first_at + within - now
    if quiet is not None:
        wait = min(wait, last_at + quiet - now)
    return max(0.0, wait)


@_tracks_buffer_agen
async def take_gathered(stream: StreamT, max_: int, within: float,
                        quiet: float | None = None) -> AsyncIterator[list[EventT]]:
    """faust's `Stream.take_events`, asleep while nothing comes: up to `max_` events, gathered for
    `within` seconds from the first one, or (`quiet`) until none came for that long
    (streams.runtime.take_wait).

    faust's take wakes every `within` seconds, events or not: the worker's takes (three at 50 ms)
    woke its loop ~60 times a second on an idle stack (issue 18: an idle stack within 5 % of a
    core). faust has no option for it; this is its code (faust-streaming 0.11) with one wait added
    for the first event, the buffering and acking unchanged.
    """
    buffer: list[Any] = []
    events: list[EventT] = []
    first_at = last_at = 0.0  # loop times of the take's first and latest event
    first, buffer_full, buffer_consumed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    stream_enable_acks = stream.enable_acks
    buffer_consuming: asyncio.Future | None = None
    channel_it = aiter(stream.channel)

    async def add_to_buffer(value: Any) -> Any:
        try:
            nonlocal buffer_consuming, first_at, last_at
            if buffer_consuming is not None:
                try:
                    await buffer_consuming
                finally:
                    buffer_consuming = None
            buffer.append(value)
            last_at = stream.loop.time()
            if len(buffer) == 1:
                first_at = last_at
            event = stream.current_event
            if event is None:
                raise RuntimeError("Take buffer found current_event is None")
            events.append(event)
            first.set()
            if len(buffer) >= max_:
                buffer_full.set()
                buffer_consumed.clear()  # no more than max_ in a take: wait until this one is handled
                await stream.wait(buffer_consumed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # the take acks its events once they are handled
    stream.add_processor(add_to_buffer)
    stream._enable_passive(channel_it)
    try:
        while not stream.should_stop:
            if not buffer:
                await stream.wait_for_stopped(first)
            while not buffer_full.is_set() and not stream.should_stop:
                wait = take_wait(stream.loop.time(), first_at, last_at, within=within, quiet=quiet)
                if wait <= 0:
                    break
                await stream.wait_for_stopped(buffer_full, timeout=wait)
            if buffer:
                buffer_consuming = stream.loop.create_future()
                try:
                    yield list(events)
                finally:
                    buffer.clear()
                    for event in events:
                        await stream.ack(event)
                    events.clear()
                    if not buffer_consuming.done():
                        buffer_consuming.set_result(None)
                    first.clear()
                    buffer_full.clear()
                    buffer_consumed.set()
    finally:
        stream.enable_acks = stream_enable_acks
        stream._processors.remove(add_to_buffer)


async def consume_batches(
    stream: StreamT, *, processor: str, codec: AvroCodec, handle: BatchHandler, dead_letters: DeadLetters,
    metrics: WorkerMetrics, max_events: int = 500, within_s: float = 0.05, quiet_s: float | None = None,
    wanted: Callable[[EventT], bool] | None = None,
) -> None:
    """Like `consume`, for a processor that works on what arrived together: one `handle` call per
    take of up to `max_events` events (what came within `within_s` of the first, or until none
    came for `quiet_s`: take_wait), so that several events about one key cost one write. The
    events are acked after the call. A take that fails is handled again event by event, so that
    only the poison is dead-lettered; `handle` must therefore be idempotent (every processor here
    is: redelivery after a crash needs it anyway).

    `wanted(event)`, when given, lets a processor pass over the events it has nothing to do with
    before their value is decoded (they are acked as handled, and never dead-lettered here)."""
    intake = _Intake(stream, processor, codec, dead_letters, metrics, wanted)
    async for events in take_gathered(stream, max_events, within_s, quiet_s):
        admitted = []
        for event in events:
            value = await intake.admit(event)
            if value is not intake.SKIP:
                admitted.append((value, event))
        if not admitted:
            continue
        started = time.perf_counter()
        try:
            await handle(admitted)
        except Exception:
            log.warning("%s failed on a take of %d events; handling them one by one", processor, len(admitted),
                        exc_info=True)
            for one in admitted:
                try:
                    await handle([one])
                except Exception as exc:  # a processing bug must not stop the partition: record it and go on
                    message = one[1].message
                    log.exception("%s failed on %s/%s/%s", processor, message.topic, message.partition, message.offset)
                    await intake.fail(one[1], FailureStage.PROCESS, exc)
                    continue
                intake.processed.inc()
        else:
            intake.processed.inc(len(admitted))
        intake.timing.observe(time.perf_counter() - started)


def tables_restoring(app: Any) -> bool:
    """Whether faust is between a rebalance's revocation and the end of its restore: the tables of
    partitions this worker just took over hold a standby's lagging copy (or nothing) until then.
    Streams are paused meanwhile; what reads tables outside them (timers, supervisors, queries)
    must wait too."""
    return bool(getattr(app, "rebalancing", False))


def stored_row(table: Any, key: Any, event: EventT | None = None) -> Any:
    """`table.get(key)` from the table's store: faust's own lookup runs its sensors and, for most
    keys of the status processor (creatives synced nowhere), raises and catches a KeyError; that
    was ~40 % of the processor's time. A serialized (RocksDB) store is read once, not asked `in`
    and then `[]`.

    A RocksDB store looks a key up in the partition of the current event: in a take, pass the
    event the key came with (by default, the event being processed)."""
    with writing_as(event) if event is not None else nullcontext():
        store = table.data
        if isinstance(store, SerializedStore):
            raw = store._get(store._encode_key(key))
            return None if raw is None else store._decode_value(raw)
        return store[key] if key in store else None


@contextmanager
def writing_as(event: EventT) -> Iterator[None]:
    """Table writes inside go to the changelog partition of `event`: faust takes it from the
    current event, which in a take (consume_batches) may be one of another partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
