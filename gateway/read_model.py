"""The gateway's view of task results: the recent ones (bounded), and the waiters of requests that
expect a task's answer. The libraries themselves are read from their owners (gateway/library.py).

Reads: task results.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from topics.catalogue import Codecs, topic
from topics.errors import CodecError
from topics.events import TaskResult
from topics.pacing import FetchPacing, pace
from topics.views import assign_from_beginning

log = logging.getLogger(__name__)


class Bounded(OrderedDict):
    """An insertion-ordered dict that forgets its oldest entries beyond `limit` entries or beyond
    `max_bytes` of their sizes (`size_of`)."""

    def __init__(self, limit: int, max_bytes: int | None = None, size_of: Any = None) -> None:
        super().__init__()
        self.limit, self.max_bytes, self._size_of = limit, max_bytes, size_of
        self.bytes = 0

    def __setitem__(self, key: Any, value: Any) -> None:
        if key in self:
            self.bytes -= self._size(super().__getitem__(key))
        super().__setitem__(key, value)
        self.bytes += self._size(value)
        self.move_to_end(key)
        while len(self) > self.limit or (self.max_bytes is not None and self.bytes > self.max_bytes and len(self) > 1):
            self.bytes -= self._size(self.popitem(last=False)[1])

    def _size(self, value: Any) -> int:
        return self._size_of(value) if self._size_of is not None else 0


class LibraryView:
    def __init__(self, bootstrap_servers: str, codecs: Codecs, topic_prefix: str, *, task_limit: int = 100_000,
                 task_bytes: int = 64 * 1024 * 1024, pacing: FetchPacing | None = None) -> None:
        self._bootstrap, self._codecs = bootstrap_servers, codecs
        # Paced (topics.pacing) and touched by every request that expects an answer: the results
        # of a burst of requests come at the busy pace.
        self.pacing = pacing or FetchPacing()
        self._results_topic = topic("task_results").full_name(topic_prefix)
        # task id -> TaskResult: bounded by count and by the bytes of their answers (a
        # 100-creative answer is ~10 KB: 100,000 of them would be a gigabyte)
        self.tasks: Bounded = Bounded(task_limit, task_bytes, lambda r: len(r.result_json or "") + 200)
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="library-view")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False,
                                        fetch_max_wait_ms=20, auto_offset_reset="earliest")
            try:
                await consumer.start()
                pace(consumer, self.pacing)
                partitions = await assign_from_beginning(consumer, [self._results_topic])
                ends = await consumer.end_offsets(partitions)
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                    for tp, records in batches.items():
                        for record in records:
                            self._apply(record.value)
                    if not self.caught_up.is_set() and all(await self._reached(consumer, ends)):
                        self.caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker went away: keep what we have and reconnect
                log.warning("read model consumer failed; reconnecting", exc_info=True)
                await asyncio.sleep(1)
            finally:
                await consumer.stop()

    @staticmethod
    async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> list[bool]:
        return [await consumer.position(tp) >= end for tp, end in ends.items()]

    def _apply(self, raw: bytes | None) -> None:
        try:
            self.apply_result(self._codecs.value("task_results").decode(raw))
        except CodecError:
            log.warning("skipping an unreadable record on %s", self._results_topic)

    # -- state --------------------------------------------------------------------------------
    def apply_result(self, result: TaskResult) -> None:
        self.tasks[result.task_id] = result
        for waiter in self._waiters.pop(result.task_id, []):
            if not waiter.done():
                waiter.set_result(result)

    # -- waiting ------------------------------------------------------------------------------
    def expect(self, task_id: str, *, fresh: bool = False) -> asyncio.Future:
        """Register interest in a task's result; call before publishing its command. `fresh`: only
        a result still to come (a retried request is answered anew, e.g. `replayed: true`)."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pacing.touch()
        if task_id in self.tasks and not fresh:
            future.set_result(self.tasks[task_id])
        else:
            self._waiters.setdefault(task_id, []).append(future)
        return future

    async def settle(self, task_id: str, future: asyncio.Future, timeout_s: float) -> TaskResult | None:
        """The task's result, or None when `timeout_s` runs out first."""
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(task_id)
            if waiters and future in waiters and future.done():
                waiters.remove(future)
