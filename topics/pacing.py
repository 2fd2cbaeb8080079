"""How long a consumer's fetch may wait at the broker: short while records flow, long when idle.

A Kafka broker holds a fetch until data arrives or the wait runs out (long polling), so on Kafka
a long wait costs no latency. The embedded broker (Tansu 0.6) does not wake a held fetch when a
record arrives: it answers at about half the wait, data or not (measured: `max_wait` 500 ms →
a record waited ~115 ms, 2,000 ms → ~865 ms). With the 20 ms wait that keeps a hop at ~10 ms,
every idle consumer made up to 100 fetches a second: an idle stack kept the broker at ~35 % of a
core and each process at 5-20 % (issue 18).

So each consumer is paced: `busy_ms` while records came within the last `idle_after_s` (or a
caller said it expects some: `touch`), `idle_ms` after that. The first record after a quiet
spell waits up to about half of `idle_ms` on the embedded broker (nothing on Kafka); the records
after it are fast again. aiokafka reads the wait when it builds each fetch request; no client
option varies it, so the fetcher's attribute is made a property (`pace`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.consumer.fetcher import Fetcher


@dataclass
class FetchPacing:
    busy_ms: int = 20
    idle_ms: int = 2000
    idle_after_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    last_activity: float = field(default=float("-inf"))

    def touch(self) -> None:
        """Records came, or are expected soon (a request waits for an answer): be fast for a while."""
        self.last_activity = self.clock()

    def wait_ms(self) -> int:
        if self.clock() - self.last_activity < self.idle_after_s:
            return self.busy_ms
        return max(self.idle_ms, self.busy_ms)

    @property
    def idle(self) -> bool:
        return self.wait_ms() != self.busy_ms


class _PacedFetcher(Fetcher):
    """aiokafka's fetcher asking its pacing for the wait of every fetch it builds."""

    _pacing: FetchPacing

    @property
    def _fetch_max_wait_ms(self) -> int:  # read in _get_actions_per_node, for each request
        return self._pacing.wait_ms()

    @_fetch_max_wait_ms.setter
    def _fetch_max_wait_ms(self, value: int) -> None:  # Fetcher.__init__ sets it; the pacing decides
        pass

    async def _proc_fetch_request(self, assignment: Any, node_id: Any, request: Any) -> bool:
        has_new_data = await super()._proc_fetch_request(assignment, node_id, request)
        if has_new_data:
            self._pacing.touch()
        return has_new_data


def pace(consumer: Any, pacing: FetchPacing) -> FetchPacing:
    """Pace a started aiokafka consumer's fetches by `pacing` (returned, to `touch` it)."""
    fetcher = consumer._fetcher
    fetcher._pacing = pacing
    fetcher.__class__ = _PacedFetcher
    return pacing
