"""`creative-sync bench`, second part: deliveries to simulated sales agents through the real gateway,
worker and broker. The agents run in the bench's own process (real AdCP servers on loopback), so
each receipt is timed on the same clock as the request that caused it.

- deliveries/s: N creatives synced by hand to every agent, from the first request to the last receipt;
- latency: content updates at a steady rate re-sync each creative to every agent that has it,
  timed from the start of the update's request to its receipt at each agent;
- approvals/s: (creative, agent) rows that reached `approved` in the status, per second.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from creative_sync.broker import free_port
from creative_sync.samples import display_creative, sync_request
from creative_sync.sim_agents import SimAgent, SimAgentConfig, create_agent_app

AGENT_TOKEN = "bench-agent-token"


def api_caller(http: aiohttp.ClientSession) -> Callable[[str, dict], Awaitable[dict]]:
    """`call(operation, body)`: the REST operation's answer, or RuntimeError for an error status."""
    async def call(operation: str, body: dict) -> dict:
        async with http.post(f"/api/v1/{operation}", json=body) as response:
            answer = await response.json()
            if response.status >= 300:
                raise RuntimeError(f"{operation}: {response.status} {answer}")
            return answer
    return call


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


async def sync_part(base: str, token: str, *, agents: int = 10, creatives: int = 2000, rate: float = 100.0,
                    updates: int = 500, progress=lambda label, done, total: None,  # noqa: ANN001
                    cpu: Any = None) -> dict[str, Any]:
    """`cpu`: a creative_sync.bench.CpuMeter, for the CPU each process spends on the deliveries."""
    if cpu is None:
        from creative_sync.bench import CpuMeter

        cpu = CpuMeter()
    sims, runners = [], []
    account = "bench-0"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base, headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as http:
        call = api_caller(http)
        try:
            for n in range(agents):
                sim = SimAgent(SimAgentConfig(f"bench-agent-{n}", f"Bench agent {n}", ("image",)))
                runner = web.AppRunner(create_agent_app(sim, AGENT_TOKEN), access_log=None)
                await runner.setup()
                port = free_port()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                sims.append(sim)
                runners.append(runner)
                await call("register_sales_agent", {
                    "account": {"account_id": account}, "sales_agent_id": sim.config.agent_id, "name": sim.config.name,
                    "agent_url": f"http://127.0.0.1:{port}/mcp", "auth": {"token": AGENT_TOKEN}, "formats": ["image"]})
            # Agents are registered long before their creatives in real life: the clock starts once
            # each is discovered (which also loads the adcp client in the worker, ~20 s of CPU once).
            deadline = time.time() + 180
            while time.time() < deadline:
                listed = (await call("list_sales_agents", {"account": {"account_id": account}}))["sales_agents"]
                done = sum(1 for a in listed if a["discovery"] == "done")
                progress("discovery of the sim agents", done, agents)
                if done >= agents:
                    break
                await asyncio.sleep(0.5)
            ids = [f"b{i:05d}" for i in range(creatives)]
            chunks = [ids[i:i + 100] for i in range(0, len(ids), 100)]
            for chunk in chunks:
                await _completed(call, sync_request(account, [display_creative(c) for c in chunk]))

            def received() -> int:
                return sum(len(s.received) for s in sims)

            # 1. throughput: every creative to every agent
            total = creatives * agents
            started, cpu_before = time.time(), cpu.snapshot()
            for chunk in chunks:
                await call("sync_creative_to_sales_agents", {"account": {"account_id": account}, "creative_ids": chunk})
            while received() < total:
                progress("deliveries to sim agents", received(), total)
                await asyncio.sleep(0.2)
            progress("deliveries to sim agents", total, total)
            last = max(t for s in sims for t in s.received_at)
            deliveries_per_s = total / (last - started)

            # 2. approvals recorded in the status (the agents auto-approve in their answer)
            # A chunk fully approved is not asked again: re-reading 3,000 statuses every half second
            # was ~15 % of the worker's CPU in this window, the measurement measuring itself.
            settled: dict[int, int] = {}

            async def approved() -> int:
                for n, chunk in enumerate(chunks):
                    if settled.get(n) == len(chunk) * agents:
                        continue
                    answer = await call("get_creative_sync_status", {"account": {"account_id": account}, "creative_ids": chunk})
                    settled[n] = sum(c["summary"]["approved"] for c in answer["creatives"])
                    if settled[n] < len(chunk) * agents:
                        break  # approvals land roughly in order: the later chunks can wait for the next look
                return sum(settled.values())
            while (done := await approved()) < total:
                progress("approvals in the status", done, total)
                await asyncio.sleep(0.5)
            progress("approvals in the status", total, total)
            # Until the last approval is recorded: a status processor that lags would otherwise
            # spend part of its share after the clock stops.
            cpu_per_thousand = cpu.per_thousand(cpu_before, cpu.snapshot(), total)
            approvals_per_s = total / (time.time() - started)

            # 3. latency: content updates at `rate` creatives/s, each re-synced to every agent
            before = [len(s.received) for s in sims]
            sent_at: dict[str, float] = {}
            interval = min(100, updates) / rate
            batch_ids = [ids[i % len(ids)] for i in range(updates)]
            for start in range(0, updates, 100):
                tick = time.time()
                chunk = batch_ids[start:start + 100]
                await _completed(call, sync_request(account, [
                    display_creative(c, url=f"https://cdn.example.com/{c}-v2.png") for c in chunk]))
                for c in chunk:
                    # From the request's start: its answer may come after the agents already have
                    # the update (a `submitted` answer is polled every 0.5 s), which made the
                    # figure negative when timed from the answer.
                    sent_at[c] = tick
                await asyncio.sleep(max(0.0, interval - (time.time() - tick)))
            want = sum(before) + len(sent_at) * agents
            deadline = time.time() + 300
            while received() < want and time.time() < deadline:
                progress("re-syncs of content updates", received() - sum(before), want - sum(before))
                await asyncio.sleep(0.2)
            progress("re-syncs of content updates", received() - sum(before), want - sum(before))
            latencies = [s.received_at[i] - sent_at[s.received[i][1]]
                         for s, first in zip(sims, before) for i in range(first, len(s.received))
                         if s.received[i][1] in sent_at]
            return {"agents": agents, "deliveries": total, "deliveries_per_s": deliveries_per_s,
                    "cpu_ms_per_1000_deliveries": cpu_per_thousand,
                    "approvals_per_s": approvals_per_s, "update_rate_offered_per_s": rate,
                    "update_deliveries": len(latencies), "update_deliveries_expected": want - sum(before),
                    "latency_p50_ms": _percentile(latencies, 0.5) * 1000, "latency_p99_ms": _percentile(latencies, 0.99) * 1000}
        finally:
            for runner in runners:
                await runner.cleanup()


async def _completed(call, body: dict) -> dict:  # noqa: ANN001
    answer = await call("sync_creatives", body)
    while answer.get("status") == "submitted":
        await asyncio.sleep(0.5)
        task = await call("get_task_status", {"task_id": answer["task_id"]})
        if task.get("status") == "completed":
            return task["result"]
    return answer
