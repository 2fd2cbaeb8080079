"""Fetch pacing (topics.pacing): short waits while records flow, long ones once idle."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka.consumer.fetcher import Fetcher

from topics.pacing import FetchPacing, pace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_consumer_that_never_saw_a_record_is_idle() -> None:
    pacing = FetchPacing(busy_ms=20, idle_ms=2000, idle_after_s=5, clock=Clock())
    assert pacing.wait_ms() == 2000 and pacing.idle


def test_records_make_it_busy_until_a_quiet_spell_of_idle_after_s() -> None:
    clock = Clock()
    pacing = FetchPacing(busy_ms=20, idle_ms=2000, idle_after_s=5, clock=clock)
    pacing.touch()
    assert pacing.wait_ms() == 20
    clock.now += 4.9
    assert pacing.wait_ms() == 20
    pacing.touch()  # more records: the quiet spell starts again
    clock.now += 4.9
    assert pacing.wait_ms() == 20
    clock.now += 0.2
    assert pacing.wait_ms() == 2000


def test_an_idle_wait_below_the_busy_one_is_the_busy_one() -> None:
    pacing = FetchPacing(busy_ms=500, idle_ms=100, clock=Clock())  # e.g. on Kafka: one long-poll wait for all
    assert pacing.wait_ms() == 500


def _fetcher_as_built(wait_ms: int) -> Fetcher:
    fetcher = Fetcher.__new__(Fetcher)  # what aiokafka's start() builds, without a broker
    fetcher._fetch_max_wait_ms = wait_ms
    return fetcher


def test_a_paced_fetcher_asks_its_pacing_for_every_request_it_builds() -> None:
    clock = Clock()
    fetcher = _fetcher_as_built(20)
    pacing = pace(SimpleNamespace(_fetcher=fetcher), FetchPacing(busy_ms=20, idle_ms=2000, idle_after_s=5, clock=clock))
    assert fetcher._fetch_max_wait_ms == 2000  # the attribute aiokafka reads when it builds a FetchRequest
    pacing.touch()
    assert fetcher._fetch_max_wait_ms == 20
    fetcher._fetch_max_wait_ms = 1500  # a write (aiokafka's constructor) does not override the pacing
    assert fetcher._fetch_max_wait_ms == 20


def test_a_fetch_that_brings_records_touches_the_pacing(monkeypatch) -> None:  # noqa: ANN001
    clock = Clock()
    fetcher = _fetcher_as_built(20)
    pacing = pace(SimpleNamespace(_fetcher=fetcher), FetchPacing(busy_ms=20, idle_ms=2000, idle_after_s=5, clock=clock))
    answers = iter([False, True])

    async def fetched(self, assignment, node_id, request) -> bool:  # noqa: ANN001
        return next(answers)

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", fetched)
    assert asyncio.run(fetcher._proc_fetch_request(None, 0, None)) is False
    assert pacing.idle
    assert asyncio.run(fetcher._proc_fetch_request(None, 0, None)) is True
    assert not pacing.idle
