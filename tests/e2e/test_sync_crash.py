"""kill -9 of the worker in the middle of a 1,000-creative × 5-agent sync, then a restart: every
(creative, agent) pair reaches a final state, and no agent ever receives the same creative
version under two idempotency keys (a batch is only ever retried under the key it was made with)."""
from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from creative_sync.sim_agents import SimAgentConfig
from gateway.app import create_app
from gateway.auth import PrincipalStore
from tests.integration.sales_agents import Agents, Api, all_synced, eventually, load_and_sync_by_hand, register
from tests.support import WorkerProcess

CREATIVES, AGENTS = 1000, 5


@pytest.mark.timeout(600)  # ~40 s here; its bounded waits add up to more than pytest's default 300 s
async def test_killed_worker_resumes_every_delivery_under_its_original_key(worker, topics_created, tmp_path):
    settings = topics_created
    agents = Agents()
    store = PrincipalStore(settings.principals_file)
    client = TestClient(TestServer(create_app(settings.with_(request_budget_s=30), principals=store)))
    await client.start_server()
    api = Api(client, store.add("buyer", ["acct-1"])[1])
    restarted = None
    try:
        for n in range(AGENTS):
            versions = ("3.0", "3.1") if n == 0 else ("3.0", "3.1", "3.2")
            await agents.add(SimAgentConfig(f"agent-{n}", f"Publisher {n}", ("image",), versions=versions))
            await register(api, agents, f"agent-{n}", f"Publisher {n}")
        await asyncio.to_thread(worker.wait_assigned)

        ids = [f"c{i:04d}" for i in range(CREATIVES)]
        chunks = await load_and_sync_by_hand(api, AGENTS, ids)

        def delivered() -> int:
            return sum(len(sim.received) for sim in agents.sims.values())
        await eventually(lambda: asyncio.sleep(0, delivered() >= 600), timeout=120, what="the first deliveries")
        worker.kill9()  # mid-delivery: batches in flight, results half published, offsets uncommitted
        at_kill = delivered()
        assert at_kill < CREATIVES * AGENTS
        restarted = WorkerProcess(settings, tmp_path / "worker-restarted.log").start()

        await eventually(lambda: all_synced(api, chunks, AGENTS), timeout=240,
                         what="every (creative, agent) pair synced after the restart")

        for name, sim in agents.sims.items():
            keys_by_creative: dict[str, set[str]] = {}
            for _, creative_id, key in sim.received:
                keys_by_creative.setdefault(creative_id, set()).add(key)
            assert set(keys_by_creative) == set(ids), f"{name} is missing creatives"
            twice = {c: k for c, k in keys_by_creative.items() if len(k) > 1}
            assert not twice, f"{name} received creatives under two idempotency keys: {list(twice.items())[:3]}"
    finally:
        if restarted is not None:
            restarted.stop(grace_s=0)
        await client.close()
        await agents.close()
