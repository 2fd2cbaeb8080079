"""Field agents (tests.field_agents) as processes of their own for the interop tests: started on
loopback ports, read back through their test endpoints, killed with SIGKILL and started again on
the same port."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from creative_sync.broker import free_port
from tests.field_agents.agent import FieldAgentConfig

ROOT = Path(__file__).resolve().parents[2]


class FieldProcess:
    """One process serving one or more field agents."""

    def __init__(self, configs: list[FieldAgentConfig], log_path: Path) -> None:
        self.configs = [c if c.port else dataclasses.replace(c, port=free_port()) for c in configs]
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 240) -> "FieldProcess":
        """Start and wait until every agent listens (importing the adcp server framework takes
        ~20 s of CPU: generous on a busy machine)."""
        payload = json.dumps([dataclasses.asdict(c) for c in self.configs])
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "tests.field_agents", payload], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + timeout_s
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        seen = b""
        while b"ready" not in seen:
            if self.process.poll() is not None:
                raise RuntimeError(f"field agents exited: {self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("field agents did not start in time")
            seen += self.process.stdout.read() or b""
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def url(self, index: int = 0, path: str | None = None) -> str:
        config = self.configs[index]
        return f"http://127.0.0.1:{config.port}{config.mcp_path if path is None else path}"

    async def state(self, index: int = 0) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(self.url(index, "/_field/state")) as response:
                return await response.json()

    async def decide(self, account_id: str, creative_id: str, status: str, reason: str | None = None, index: int = 0) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(self.url(index, "/_field/decide"), json={
                    "account_id": account_id, "creative_id": creative_id, "status": status, "reason": reason}) as response:
                assert response.status == 200, await response.text()


async def start_field_agents(configs: list[FieldAgentConfig], log_path: Path) -> FieldProcess:
    return await asyncio.to_thread(FieldProcess(configs, log_path).start)
