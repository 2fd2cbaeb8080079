"""The gateway's read model: every account's creatives and the recent task results, kept current
from the backbone, and the waiters of requests that expect a task's answer.

Reads: creative state (from the beginning: the topic is compacted per creative) and task results.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from topics.catalogue import Codecs, topic
from topics.errors import CodecError
from topics.events import CreativeChanged, TaskResult
from topics.views import assign_from_beginning

log = logging.getLogger(__name__)


class Bounded(OrderedDict):
    """An insertion-ordered dict that forgets its oldest entries beyond `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class LibraryView:
    def __init__(self, bootstrap_servers: str, codecs: Codecs, topic_prefix: str, *, task_limit: int = 100_000) -> None:
        self._bootstrap, self._codecs = bootstrap_servers, codecs
        self._state_topic = topic("creative_state").full_name(topic_prefix)
        self._results_topic = topic("task_results").full_name(topic_prefix)
        self.creatives: dict[str, dict[str, CreativeChanged]] = {}  # account -> creative id -> latest state
        self.tasks: Bounded = Bounded(task_limit)  # task id -> TaskResult
        self._seen_by_command: Bounded = Bounded(task_limit)  # command id -> creative ids whose change arrived
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self._changed = asyncio.Event()
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
                partitions = await assign_from_beginning(consumer, [self._state_topic, self._results_topic])
                ends = await consumer.end_offsets(partitions)
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                    for tp, records in batches.items():
                        for record in records:
                            self._apply(tp.topic, record.value)
                    if not self.caught_up.is_set() and all(await self._reached(consumer, ends)):
                        self.caught_up.set()
                    if batches:
                        self._changed.set()
                        self._changed = asyncio.Event()
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

    def _apply(self, topic_name: str, raw: bytes | None) -> None:
        try:
            if topic_name == self._state_topic:
                self.apply_change(self._codecs.value("creative_state").decode(raw))
            else:
                self.apply_result(self._codecs.value("task_results").decode(raw))
        except CodecError:
            log.warning("skipping an unreadable record on %s", topic_name)

    # -- state --------------------------------------------------------------------------------
    def apply_change(self, change: CreativeChanged) -> None:
        library = self.creatives.setdefault(change.account_id, {})
        current = library.get(change.creative_id)
        # A redelivered (older) change never overwrites a newer one.
        if current is None or (change.updated_at, change.content_version) >= (current.updated_at, current.content_version):
            library[change.creative_id] = change
        seen = self._seen_by_command.get(change.command_id) or set()
        seen.add(change.creative_id)
        self._seen_by_command[change.command_id] = seen

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
        if task_id in self.tasks and not fresh:
            future.set_result(self.tasks[task_id])
        else:
            self._waiters.setdefault(task_id, []).append(future)
        return future

    async def settle(self, task_id: str, future: asyncio.Future, timeout_s: float, *,
                     changed_ids: Callable[[TaskResult], set[str]] | None = None) -> TaskResult | None:
        """The task's result once it and (read-your-writes) the changes it reports are visible
        here, or None when `timeout_s` runs out first."""
        deadline = time.monotonic() + timeout_s
        try:
            result = await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(task_id)
            if waiters and future in waiters and future.done():
                waiters.remove(future)
        expected = changed_ids(result) if changed_ids else set()
        while expected - (self._seen_by_command.get(task_id) or set()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return None
        return result

    def account_creatives(self, account_id: str) -> list[CreativeChanged]:
        return list(self.creatives.get(account_id, {}).values())
