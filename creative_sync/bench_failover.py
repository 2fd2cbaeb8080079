"""`creative-sync bench --failover`: a worker killed with -9 in the middle of a sync, on a library
of `library` creatives. A second worker joins the bench's worker (its own RocksDB directory; each
keeps standby copies of the other's tables); `creatives` of the library are synced by hand to
`agents` simulated agents (in the bench's process), and once a share of the deliveries is done the
second worker is killed and not restarted. Reported: how long after the kill the dead worker's
agents received again (from the survivor), the survivor's own agents' longest pause, and whether
every (creative, agent) pair arrived under exactly one idempotency key.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from creative_sync.bench_scale import grow
from creative_sync.bench_sync import api_caller
from creative_sync.broker import free_port
from creative_sync.processes import WorkerProcess
from creative_sync.settings import Settings
from creative_sync.sim_agents import SimAgent, SimAgentConfig, create_agent_app
from topics.catalogue import Codecs
from topics.ids import scoped

ACCOUNT = "bench-failover"
AGENT_TOKEN = "bench-failover-agent-token"


def largest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time in [start, end] without any of `times`."""
    points = [start, *sorted(t for t in times if start < t < end), end]
    return max(b - a for a, b in zip(points, points[1:]))


def agents_by_owner(owners: dict[int, str], partition_of: Callable[[str], int], account: str, per_owner: int,
                    prefix: str = "agent") -> dict[str, list[str]]:
    """Agent ids (`<prefix>-<n>`) picked so that each owner of the delivery queues gets `per_owner`."""
    picked: dict[str, list[str]] = {url: [] for url in set(owners.values())}
    n = 0
    while any(len(ids) < per_owner for ids in picked.values()):
        owner = owners[partition_of(scoped(account, f"{prefix}-{n}"))]
        if len(picked[owner]) < per_owner:
            picked[owner].append(f"{prefix}-{n}")
        n += 1
    return picked


async def failover_part(settings: Settings, base_url: str, token: str, survivor: WorkerProcess, workdir: Path, *,
                        library: int = 100_000, creatives: int = 2000, agents: int = 10, kill_at: float = 0.3,
                        progress: Callable[[str, int, int], None] = lambda label, done, total: None) -> dict[str, Any]:
    second_settings = settings.with_(worker_port=free_port(), data_dir=workdir / "second-worker",
                                     secrets_key_file=settings.secrets_key_path)
    doomed_worker = WorkerProcess(second_settings, workdir / "second-worker.log").start()
    sims: dict[str, SimAgent] = {}
    runners: list[web.AppRunner] = []
    headers = {"Authorization": f"Bearer {token}"}
    try:
        await asyncio.to_thread(doomed_worker.wait_assigned, 180)
        deadline = time.monotonic() + 180
        while True:  # until both own delivery queues (the group has rebalanced)
            owners = await asyncio.to_thread(survivor.owners_of, "sync_jobs")
            if len(owners) == 8 and set(owners.values()) == {survivor.settings.worker_url, second_settings.worker_url}:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the second worker got no delivery queues: {owners}")
            await asyncio.sleep(0.5)
        loaded_per_s = await grow(base_url, token, 0, library, progress=progress, account=ACCOUNT)
        picked = agents_by_owner(owners, Codecs(prefix=settings.topic_prefix).partition_of("sync_jobs"), ACCOUNT,
                                 agents // 2)
        doomed, kept = picked[second_settings.worker_url], picked[survivor.settings.worker_url]
        async with aiohttp.ClientSession(base_url, headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as http:
            call = api_caller(http)
            for agent_id in doomed + kept:
                sim = sims[agent_id] = SimAgent(SimAgentConfig(agent_id, agent_id, ("image", "video_hosted")))
                runner = web.AppRunner(create_agent_app(sim, AGENT_TOKEN), access_log=None)
                await runner.setup()
                port = free_port()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                runners.append(runner)
                await call("register_sales_agent", {
                    "account": {"account_id": ACCOUNT}, "sales_agent_id": agent_id, "name": agent_id,
                    "agent_url": f"http://127.0.0.1:{port}/mcp", "auth": {"token": AGENT_TOKEN}, "formats": ["image", "video_hosted"]})
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                listed = (await call("list_sales_agents", {"account": {"account_id": ACCOUNT}}))["sales_agents"]
                done = sum(1 for a in listed if a["discovery"] == "done")
                progress("failover: discovery", done, len(sims))
                if done >= len(sims):
                    break
                await asyncio.sleep(0.5)

            def received(agent_ids: list[str]) -> int:
                return sum(len(sims[a].received) for a in agent_ids)
            ids = [f"s{n:07}" for n in range(creatives)]
            total = creatives * len(sims)
            async def kill_when_due() -> tuple[float, int]:  # while the sync requests are still being made
                while received(doomed + kept) < kill_at * total:
                    await asyncio.sleep(0.01)
                doomed_worker.kill9()
                return time.time(), received(doomed + kept)
            killing = asyncio.create_task(kill_when_due())
            started = time.time()
            for start in range(0, creatives, 100):
                await call("sync_creative_to_sales_agents", {"account": {"account_id": ACCOUNT},
                                                             "creative_ids": ids[start:start + 100]})
            killed_at, at_kill = await killing
            deadline = time.monotonic() + 600
            while received(doomed + kept) < total and time.monotonic() < deadline:
                progress("failover: deliveries after the kill", received(doomed + kept), total)
                await asyncio.sleep(0.2)
            progress("failover: deliveries after the kill", received(doomed + kept), total)
        after = [t for a in doomed for t in sims[a].received_at if t > killed_at]
        kept_times = [t for a in kept for t in sims[a].received_at]
        last_kept = max(kept_times)
        keys = {(a, creative_id): set() for a in sims for creative_id in ids}
        for agent_id, sim in sims.items():
            for _, creative_id, key in sim.received:
                keys.setdefault((agent_id, creative_id), set()).add(key)
        return {"library": library, "loaded_per_s": loaded_per_s, "deliveries": total, "delivered": received(doomed + kept),
                "delivered_at_kill": at_kill, "kill_after_s": killed_at - started,
                "resumed_after_s": (min(after) - killed_at) if after else None,
                "survivor_longest_pause_s": largest_gap(kept_times, killed_at, last_kept) if last_kept > killed_at else None,
                "survivor_done_after_kill_s": last_kept - killed_at,
                "all_done_after_kill_s": max(t for s in sims.values() for t in s.received_at) - killed_at,
                "pairs_missing": sum(1 for k in keys.values() if not k),
                "pairs_under_two_keys": sum(1 for k in keys.values() if len(k) > 1)}
    finally:
        for runner in runners:
            await runner.cleanup()
        doomed_worker.stop(grace_s=0)
