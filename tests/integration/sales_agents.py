"""Integration-test harness for the sync engine: simulated sales agents served on loopback (real
AdCP servers), the gateway's REST API as a test client, and polling until something holds."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from creative_sync.broker import free_port
from creative_sync.samples import display_creative, sync_request
from creative_sync.sim_agents import (
    SimAgent,
    SimAgentConfig,
    create_a2a_agent_app,
    create_agent_app,
)
from gateway import keys

AGENT_TOKEN = "sim-agent-token-for-tests"


class Agents:
    """Simulated sales agents served on loopback for one test."""

    def __init__(self) -> None:
        self.sims: dict[str, SimAgent] = {}
        self.urls: dict[str, str] = {}
        self.mcp_sessions: dict[str, Any] = {}  # agent id -> its MCP sessions (gateway.mcp.Sessions)
        self._runners: list[web.AppRunner] = []
        self._servers: list[tuple[Any, asyncio.Task]] = []

    async def add(self, config: SimAgentConfig) -> SimAgent:
        sim = SimAgent(config)
        runner = web.AppRunner(create_agent_app(sim, AGENT_TOKEN))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._runners.append(runner)
        self.sims[config.agent_id], self.urls[config.agent_id] = sim, f"http://127.0.0.1:{port}/mcp"
        self.mcp_sessions[config.agent_id] = runner.app[keys.MCP_SESSIONS]
        return sim

    async def add_a2a(self, config: SimAgentConfig) -> SimAgent:
        """The agent over A2A, served by the official adcp server framework under uvicorn."""
        import uvicorn

        sim, port = SimAgent(config), free_port()
        app = await asyncio.to_thread(create_a2a_agent_app, sim, AGENT_TOKEN, port)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self._servers.append((server, asyncio.create_task(server.serve())))
        while not server.started:
            await asyncio.sleep(0.05)
        self.sims[config.agent_id], self.urls[config.agent_id] = sim, f"http://127.0.0.1:{port}"
        return sim

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        for server, task in self._servers:
            server.should_exit = True
            await task


class Api:
    def __init__(self, client: TestClient, token: str, account: str = "acct-1") -> None:
        self.client, self.token, self.account = client, token, account

    async def call(self, operation: str, body: dict, status: int = 200) -> dict:
        response = await self.client.post(f"/api/v1/{operation}", json=body, headers={"Authorization": f"Bearer {self.token}"})
        answer = await response.json()
        assert response.status == status, answer
        return answer

    async def status_of(self, creative_id: str) -> dict[str, dict]:
        answer = await self.call("get_creative_sync_status", {"account": {"account_id": self.account}, "creative_id": creative_id})
        return {row["sales_agent_id"]: row for row in answer["creatives"][0]["sales_agents"]}


#: time.monotonic() at which the running test's pytest-timeout budget ends, less a margin (set by
#: tests/conftest.py): a wait gives up by then, so that a slow test fails saying what it waited for
#: rather than as pytest's bare timeout.
test_deadline = float("inf")


async def eventually(probe: Callable[[], Awaitable[Any]], *, timeout: float = 60, what: str = "") -> Any:
    deadline = min(time.monotonic() + timeout, test_deadline)
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.3)
    budget = " (the test's time budget ran out)" if deadline == test_deadline else ""
    raise AssertionError(f"timed out{budget} waiting for {what or probe}: last {last!r}")


async def register(api: Api, agents: Agents, agent_id: str, name: str, **extra) -> dict:
    return await api.call("register_sales_agent", {
        "account": {"account_id": api.account}, "sales_agent_id": agent_id, "name": name, "agent_url": agents.urls[agent_id],
        "protocol": "mcp", "auth": {"token": AGENT_TOKEN, "header": "Authorization"}, **extra})


async def load_and_sync_by_hand(api: Api, agents: int, creative_ids: list[str]) -> list[list[str]]:
    """Once the account's `agents` agents are discovered: the creatives into the library, then synced
    by hand to every agent, 100 a request; the chunks of 100."""
    async def discovered() -> bool:
        listed = await api.call("list_sales_agents", {"account": {"account_id": api.account}})
        return len(listed["sales_agents"]) == agents and all(a["discovery"] == "done" for a in listed["sales_agents"])
    await eventually(discovered, timeout=180, what="discovery")
    chunks = [creative_ids[i:i + 100] for i in range(0, len(creative_ids), 100)]
    for chunk in chunks:
        await api.call("sync_creatives", sync_request(api.account, [display_creative(c) for c in chunk]))
    for chunk in chunks:
        answer = await api.call("sync_creative_to_sales_agents", {"account": {"account_id": api.account}, "creative_ids": chunk})
        assert all(len(c["queued"]) == agents for c in answer["creatives"]), answer
    return chunks


class Unsettled(list):
    """Falsy: what a probe still misses (the (creative, agent, status) rows not yet synced, the
    counts so far, ...), which `eventually` reports when it gives up. Falsy even when empty: a
    probe answers `True` itself when nothing is missing (`settled`), never `found or True`."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"{len(self)} not settled, first {list(self[:5])!r}"


def settled(missing: Unsettled) -> bool | Unsettled:
    """True when nothing is missing, else what is (`missing or True` is always True)."""
    return missing if len(missing) else True


async def all_synced(api: Api, chunks: list[list[str]], agents: int) -> bool | Unsettled:
    """Whether every creative of `chunks` is synced to all `agents` agents, as the status says (an
    owner still restoring its tables answers a transient 503: not yet)."""
    unsettled = Unsettled()
    for chunk in chunks:
        response = await api.client.post("/api/v1/get_creative_sync_status", headers={"Authorization": f"Bearer {api.token}"},
                                         json={"account": {"account_id": api.account}, "creative_ids": chunk})
        answer = await response.json()
        if response.status == 503:
            assert answer["adcp_error"]["recovery"] == "transient", answer
            return Unsettled([("503", answer["adcp_error"]["message"], chunk[0])])
        assert response.status == 200, answer
        for creative in answer["creatives"]:
            rows = creative["sales_agents"]
            if len(rows) != agents:
                unsettled.append((creative["creative_id"], f"{len(rows)} of {agents} agents", None))
            unsettled.extend((creative["creative_id"], r["sales_agent_id"], r["sync_status"])
                             for r in rows if r["sync_status"] != "synced")
    return settled(unsettled)


def image_kind_creative(creative_id: str, width: int, height: int) -> dict:
    creative = display_creative(creative_id, width=width, height=height)
    creative.pop("format_id")
    return {**creative, "format_kind": "image"}


def status_webhook(account_id: str, creative_id: str, *, key: str, to: str, reason: str | None = None,
                   came_from: str = "approved") -> bytes:
    """A sales agent's `creative.status_changed` webhook body (AdCP), as real agents send it."""
    import json
    from datetime import UTC, datetime

    now = datetime.now(UTC).isoformat()
    return json.dumps({"idempotency_key": key, "notification_id": key, "notification_type": "creative.status_changed",
                       "fired_at": now, "subscriber_id": "s", "account_id": account_id, "creative_id": creative_id,
                       "transition": {"from": came_from, "to": to, "observed_at": now}, "reason_detail": reason,
                       "initiator": "seller"}).encode()
