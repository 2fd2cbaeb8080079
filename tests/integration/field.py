"""Field agents (tests.field_agents) as processes of their own for the interop tests: started on
loopback ports, read back through their test endpoints, killed with SIGKILL and started again on
the same port."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from creative_sync.broker import free_port
from creative_sync.processes import spawn_module
from creative_sync.samples import display_creative
from tests.field_agents.agent import FieldAgentConfig
from tests.integration.sales_agents import Api, eventually

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
        printed = self.log_path.with_suffix(".out")
        printed.unlink(missing_ok=True)
        with self.log_path.open("ab") as log, printed.open("wb") as out:
            self.process = spawn_module("tests.field_agents", [payload], {"PYTHONPATH": str(ROOT)}, stdout=out, stderr=log)
        deadline = time.monotonic() + timeout_s
        while b"ready" not in printed.read_bytes():
            if self.process.poll() is not None:
                raise RuntimeError(f"field agents exited: {self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("field agents did not start in time")
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


# -- the public API, as the interop tests use it ------------------------------------------------------
ACCOUNT = {"account": {"account_id": "acct-1"}}
REFERENCE = "https://creative.adcontextprotocol.org"


async def register(api: Api, agent_id: str, config: FieldAgentConfig, url: str, **extra) -> dict:
    return await api.call("register_sales_agent", {
        **ACCOUNT, "sales_agent_id": agent_id, "name": config.name, "agent_url": url, "protocol": "mcp",
        "auth": {"token": config.token, "header": "Authorization"}, **extra})


async def agent_view(api: Api, agent_id: str) -> dict:
    listed = await api.call("list_sales_agents", ACCOUNT)
    return next(a for a in listed["sales_agents"] if a["sales_agent_id"] == agent_id)


async def discovered(api: Api, agent_id: str, timeout: float = 120) -> dict:
    async def done() -> dict | None:
        view = await agent_view(api, agent_id)
        return view if view["discovery"] == "done" else None
    return await eventually(done, timeout=timeout, what=f"discovery of {agent_id}")


async def statuses(api: Api, creative_ids: list[str]) -> dict[str, dict[str, dict]]:
    answer = await api.call("get_creative_sync_status", {**ACCOUNT, "creative_ids": creative_ids})
    return {c["creative_id"]: {r["sales_agent_id"]: r for r in c["sales_agents"]} for c in answer["creatives"]}


async def settled(api: Api, creative_ids: list[str], agent_id: str, want, what: str, timeout: float = 120) -> dict:
    last: dict = {}

    async def probe() -> dict | None:
        rows = await statuses(api, creative_ids)
        last.update(rows)
        return rows if all(want(rows[c].get(agent_id)) for c in creative_ids) else None
    try:
        return await eventually(probe, timeout=timeout, what=what)
    except AssertionError:
        behind = {c: last.get(c, {}).get(agent_id) for c in creative_ids if not want(last.get(c, {}).get(agent_id))}
        raise AssertionError(f"timed out waiting for {what}: {len(behind)} not there, e.g. {list(behind.items())[:3]}") from None


def approved(row: dict | None) -> bool:
    return row is not None and row["sync_status"] == "synced" and row["approval_status"] == "approved"


def reference_creative(creative_id: str, name: str | None = None) -> dict:
    """A buyer's creative on the reference agent's format, named without the trailing slash."""
    creative = display_creative(creative_id, name=name)
    creative["format_id"] = {"agent_url": REFERENCE, "id": "display_300x250_image"}
    return creative


