"""What every processor shares: decode with the contract's codec, hand the value to the
processor, and turn any failure into a dead letter so that the stream goes on.

Reads: the processor's source topic (raw bytes). Writes: the dead-letter topic.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faust.types import EventT, Message, StreamT, TopicT

from streams.metrics import WorkerMetrics
from topics.catalogue import Codecs
from topics.codec import AvroCodec
from topics.errors import CodecError
from topics.events import DeadLetter, FailureStage

log = logging.getLogger(__name__)

Handler = Callable[[Any, EventT], Awaitable[None]]


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
    async for event in stream.events():
        message = event.message
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
