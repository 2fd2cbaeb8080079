"""`creative-sync up`'s console and restarts (creative_sync.console): news in, noise out, an error
once a minute at most; a crash loop backs off and starts over after a stable run."""
from __future__ import annotations

import json

import pytest

from creative_sync.console import Backoff, Console

pytestmark = pytest.mark.unit


def log(level: str, message: str) -> str:
    return json.dumps({"time": "t", "level": level, "logger": "x", "message": message})


def test_news_is_shown_noise_is_not_and_a_repeated_error_once_a_minute():
    console = Console()
    assert console.line("worker", log("INFO", "sales agent demo~news discovered: AdCP 3.0, 4 formats"), 0) == \
        "worker   sales agent demo~news discovered: AdCP 3.0, 4 formats"
    assert console.line("worker", log("INFO", "Fetch offset 1200 is out of range"), 1) is None
    assert console.line("worker", "[2026-12-03 18:00:00] faust banner", 1) is None
    error = log("ERROR", "Unable connect to node with id 1: [Errno 111] Connection refused")
    assert console.line("worker", error, 10) == "worker   error: Unable connect to node with id 1: [Errno 111] Connection refused"
    assert all(console.line("worker", error, 10 + n / 100) is None for n in range(1, 120))  # 120 a second: none shown
    assert console.line("worker", error, 71) is not None  # a minute later: once more
    assert console.line("gateway", error, 11) is not None  # another child's error is its own
    assert console.line("worker", log("WARNING", "sales agent x: calls failing (circuit open): 503"), 12).startswith(
        "worker   warning: sales agent x")


def test_a_crash_loop_backs_off_and_a_stable_run_starts_over():
    backoff = Backoff(base_s=1, cap_s=30, stable_s=60)
    assert [backoff.delay(ran_for_s=2) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(ran_for_s=600) == 1
