"""The gateway's link to Kafka: one aiokafka producer owned by the app's lifecycle.

The gateway starts even when the broker is down (it keeps trying in the background);
until the producer is up, publishing raises an AdCP SERVICE_UNAVAILABLE (503, transient).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from gateway.errors import OutcomeUnknown, broker_unavailable, too_large
from topics.admin import broker_answers
from topics.catalogue import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


class BrokerLink:
    def __init__(self, bootstrap: str, *, send_timeout_s: float = 5.0, connect_wait_s: float = 3.0) -> None:
        self.bootstrap = bootstrap
        self.send_timeout_s = send_timeout_s
        self.connect_wait_s = connect_wait_s  # how long a request waits for a connection in progress
        self.producer: AIOKafkaProducer | None = None
        self._connected = asyncio.Event()
        self._connector: asyncio.Task | None = None
        self._ready_cache: tuple[float, bool] = (0.0, False)

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_forever(), name="broker-connect")

    async def _connect_forever(self) -> None:
        delay = 0.2
        while self.producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=1,
                                        max_request_size=MAX_MESSAGE_BYTES,
                                        request_timeout_ms=int(self.send_timeout_s * 1000))
            try:
                await producer.start()
                self.producer = producer
                self._connected.set()
                log.info("producer connected to %s", self.bootstrap)
            except Exception as exc:  # broker down or unreachable: keep trying, answer 503 meanwhile
                await producer.stop()
                log.warning("broker %s unreachable (%s); retrying in %.1fs", self.bootstrap, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        if self._connector:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        if self.producer:
            await self.producer.stop()
            self.producer = None

    async def publish(self, topic: str, key: bytes, value: bytes, *, partition: int | None = None) -> Any:
        """Sends and waits for the broker's acknowledgement (its record metadata: partition, offset).

        Not connected: 503, nothing was sent. Too large: 413, nothing was sent. Sent but not
        acknowledged in time (or refused after being sent): OutcomeUnknown, since the record may
        have landed."""
        if len(value) + len(key) > MAX_MESSAGE_BYTES:
            raise too_large(f"{len(value) + len(key)} bytes once encoded, over the {MAX_MESSAGE_BYTES}-byte record limit")
        if self.producer is None:
            try:
                await asyncio.wait_for(self._connected.wait(), self.connect_wait_s)
            except asyncio.TimeoutError:
                raise broker_unavailable() from None
        assert self.producer is not None
        try:
            return await asyncio.wait_for(self.producer.send_and_wait(topic, value=value, key=key, partition=partition),
                                          self.send_timeout_s)
        except MessageSizeTooLargeError as exc:
            raise too_large("the broker refused the record's size") from exc
        except (KafkaError, asyncio.TimeoutError) as exc:
            log.warning("publish to %s not acknowledged: %s", topic, type(exc).__name__)
            raise OutcomeUnknown(f"the event broker did not acknowledge within {self.send_timeout_s:g} s") from exc

    async def ready(self) -> bool:
        """True when the broker answers a metadata request (cached for a second)."""
        checked_at, answer = self._ready_cache
        if time.monotonic() - checked_at < 1.0:
            return answer
        answer = self.producer is not None and await broker_answers(self.bootstrap, 2.0)
        self._ready_cache = (time.monotonic(), answer)
        return answer
