"""Fixtures: one real Kafka-protocol broker per test session, unique topics and groups per test.

Broker choice: KAFKA_BOOTSTRAP_SERVERS (an existing cluster) > CREATIVE_SYNC_TEST_BROKER=testcontainers
(Apache Kafka in Docker, where a Docker engine exists) > the embedded Tansu broker (default).
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from creative_sync.broker import PORT_RANGE_ENV, EmbeddedBroker, free_port
from creative_sync.processes import WorkerProcess, preload_children
from creative_sync.settings import Settings

_MARKER_BY_FOLDER = {"unit": "unit", "component": "component", "integration": "integration", "e2e": "e2e"}


def pytest_configure(config: pytest.Config) -> None:
    """Workers, gateways and field agents are forked from a server that imports the adcp SDK once
    (creative_sync.processes). Under pytest-xdist (`make test` runs two processes), each process
    chooses ports in a range of its own, below the system's ephemeral range: two processes'
    choices never meet, nor a port the system hands out."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        low = 10_000 + 5_000 * int(worker[2:])
        os.environ[PORT_RANGE_ENV] = f"{low}-{low + 4_999}"
    preload_children("tests.field_agents.agent")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test carries the marker of its folder (tests/unit → unit, ...)."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in _MARKER_BY_FOLDER:
            item.add_marker(getattr(pytest.mark, _MARKER_BY_FOLDER[folder]))


def pytest_collection_finish(session: pytest.Session) -> None:
    """With tests that start processes among those selected, the fork server starts now: its
    imports overlap the first tests (not for `-m alone`: `up` has its own)."""
    if any(Path(str(item.fspath)).parent.name in ("integration", "e2e") and not item.get_closest_marker("alone")
           for item in session.items):
        import multiprocessing.forkserver

        multiprocessing.forkserver.ensure_running()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    if os.environ.get("CREATIVE_SYNC_TEST_BROKER") == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def namespace() -> str:
    return uuid.uuid4().hex[:10]


def isolated_settings(bootstrap: str, namespace: str, folder: Path, *, rocksdb: bool = False) -> Settings:
    """Settings of an isolated deployment: its own topics, consumer group, ports and files."""
    return Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"t{namespace}.",
        app_id=f"cs-{namespace}",
        store="rocksdb://" if rocksdb else "memory://",
        data_dir=folder / "var",
        worker_port=free_port(),
        gateway_port=free_port(),
        principals_file=folder / "principals.json",
        log_format="text",
        allow_private_targets=True,  # simulated and field agents listen on loopback
        # Shorter than deployed, for the suite's time; what is tested is that they happen, not how
        # long they are. The embedded broker holds a JoinGroup ~half the session timeout (rounded up
        # to seconds: 3 s at the deployed 5 s), so every worker start and rebalance waits 1 s less,
        # and a killed member expires 2 s sooner; reviews are polled every second, not every 5 s.
        session_timeout_s=3.0,
        poll_interval_s=1.0,
        # A gateway a test has just started answers its first request once its producer has
        # connected, however long that takes on a busy machine, as a client retrying its 503 would.
        broker_connect_wait_s=30.0,
    )


async def create_topics(settings: Settings) -> Settings:
    from topics.admin import ensure_topics
    from topics.catalogue import all_specs

    states = await ensure_topics(settings.bootstrap_servers, all_specs(settings.app_id), settings.topic_prefix)
    assert all(state.ok for state in states)
    return settings


@pytest.fixture
def settings(kafka_bootstrap: str, namespace: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    chosen = isolated_settings(kafka_bootstrap, namespace, tmp_path, rocksdb=bool(request.node.get_closest_marker("rocksdb")))
    differing = request.node.get_closest_marker("settings")
    return chosen.with_(**differing.kwargs) if differing else chosen


@pytest.fixture
async def topics_created(settings: Settings) -> Settings:
    return await create_topics(settings)


@pytest.fixture
async def ready_worker(worker: WorkerProcess) -> WorkerProcess:
    """A worker that has joined its group and owns its partitions."""
    await asyncio.to_thread(worker.wait_assigned)
    return worker


@pytest.fixture
def worker(topics_created: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(topics_created, tmp_path / "worker.log").start()
    try:
        yield process
    finally:
        # The test is over and its topics and group are its own: no need to wait ~7 s for faust's
        # graceful shutdown (which `creative-sync up`'s Ctrl-C goes through).
        process.stop(grace_s=0)


@pytest.fixture(autouse=True)
def _waits_within_the_test_budget(request: pytest.FixtureRequest) -> Iterator[None]:
    """`eventually` gives up 15 s before pytest-timeout would end the test (its marker, else the
    ini's 300 s): the failure then names what was awaited and its last value."""
    waits = sys.modules.get("tests.integration.sales_agents")  # imported by the tests that wait (at collection)
    if waits is None:
        yield
        return
    marker = request.node.get_closest_marker("timeout")
    budget = float(marker.args[0] if marker and marker.args else request.config.getini("timeout") or "inf")
    waits.test_deadline = time.monotonic() + budget - 15
    yield
    waits.test_deadline = float("inf")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed test that started processes shows the end of their logs (workers, gateways,
    agents write them under the test's tmp_path): in CI, the clean clone is gone afterwards and
    a failure seen once must be readable from its report alone."""
    outcome = yield
    report = outcome.get_result()
    folder = getattr(item, "funcargs", {}).get("tmp_path")
    if not report.failed or not isinstance(folder, Path):
        return
    # Our processes' logs, not RocksDB's write-ahead logs (`<table>.db/000004.log`) in worker data dirs.
    logs = [log for log in sorted(folder.rglob("*.log")) if not any(part.endswith(".db") for part in log.parts)]
    for log in logs[:8]:
        lines = log.read_text(errors="replace").splitlines()
        report.sections.append((f"log {log.relative_to(folder)} ({len(lines)} lines, last 80)", "\n".join(lines[-80:])))
