"""What every processor shares: decode with the contract's codec, hand the value to the
processor, and turn any failure into a dead letter so that the stream goes on.

Reads: the processor's source topic (raw bytes). Writes: the dead-letter topic.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from datetime import UTC, datetime
from typing import Any

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


async def consume(
    stream: StreamT, *, processor: str, codec: AvroCodec, handle: Handler, dead_letters: DeadLetters, metrics: WorkerMetrics
) -> None:
    """The body of a processor's agent: every event is handled or dead-lettered, never lost or fatal."""
    processed = metrics.events.labels(processor, "processed")
    failed = metrics.events.labels(processor, "dead_lettered")
    timing = metrics.processing.labels(processor)
    hop = metrics.hop_latency.labels(processor)
    order = PartitionOrder()
    consumer: TunedConsumer = stream.app.consumer  # streams.transport: only what a processor saw gets committed
    consumer.guard()
    async for event in stream.events():
        message = event.message
        admission, offset = order.admit(
            message.tp, message.offset, generation=message.generation_id, committed=consumer.committed_offset(message.tp),
            known_gap=lambda start, end, tp=message.tp: consumer.known_gap(tp, start, end))
        if admission is not Admission.PROCESS:
            # Left unhandled, hence never acked: the commit cannot pass it before it comes again.
            if admission is Admission.REWIND:
                log.warning("%s: events %s[%s] %s..%s never arrived; fetching them again", processor, message.topic,
                            message.partition, offset, message.offset - 1)
                metrics.rewinds.labels(processor).inc()
                await consumer.rewind(message.tp, offset)
            continue
        consumer.handled(message)
        started = time.perf_counter()
        if message.timestamp:
            hop.observe(max(0.0, time.time() - message.timestamp))
        try:
            value = codec.decode(message.value)
        except CodecError as exc:
            await dead_letters.record(message, FailureStage.DECODE, processor, exc)
            failed.inc()
            continue
        try:
            await handle(value, event)
        except Exception as exc:  # a processing bug must not stop the partition: record it and go on
            log.exception("%s failed on %s/%s/%s", processor, message.topic, message.partition, message.offset)
            await dead_letters.record(message, FailureStage.PROCESS, processor, exc)
            failed.inc()
            continue
        processed.inc()
        timing.observe(time.perf_counter() - started)
