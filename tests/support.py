"""Test helpers: a real worker process, topic readers and producers on the real broker."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from creative_sync.settings import Settings
from topics.catalogue import topic


class WorkerProcess:
    """`python -m creative_sync worker` as a child process, logs in a file, killable with SIGKILL."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> "WorkerProcess":
        env = {**os.environ, **self.settings.to_env()}
        self._log = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "creative_sync", "worker"], env=env,
                                        stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def metrics(self) -> str:
        url = f"http://{self.settings.worker_host}:{self.settings.worker_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()

    def wait_assigned(self, timeout_s: float = 60.0) -> float:
        """Seconds from start until the worker owns partitions (it has joined its group)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process and self.process.poll() is None, f"worker exited: {self.log_tail()}"
            try:
                for line in self.metrics().splitlines():
                    if line.startswith("creative_sync_worker_assigned_partitions ") and float(line.split()[1]) > 0:
                        return time.monotonic() - self.started_at
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"worker did not join in {timeout_s}s: {self.log_tail()}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if hasattr(self, "_log"):
            self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def topic_name(settings: Settings, role: str) -> str:
    return topic(role).full_name(settings.topic_prefix)


async def produce(bootstrap: str, topic_name: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        batch = [await producer.send(topic_name, key=key, value=value) for key, value in messages]
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic_name: str,
    *,
    until: Callable[[list[Any]], bool],
    decode: Callable[[Any], Any] = lambda record: record,
    timeout_s: float = 60.0,
) -> list[Any]:
    """Reads `topic_name` from the beginning until `until(decoded records)` holds; fails on timeout."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    records: list[Any] = []
    try:
        partitions = consumer.partitions_for_topic(topic_name)
        deadline = time.monotonic() + timeout_s
        while not partitions and time.monotonic() < deadline:
            await consumer.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic_name)
            await asyncio.sleep(0.1)
        assert partitions, f"topic {topic_name} does not exist"
        assignment = [TopicPartition(topic_name, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        while not until(records):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{topic_name}: condition not met after {timeout_s}s with {len(records)} records")
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for batch in batches.values():
                records.extend(decode(record) for record in batch)
        return records
    finally:
        await consumer.stop()
