"""The gateway holds nothing per creative: its resident memory does not grow with the library (the
libraries live in the workers' tables; the gateway keeps bounded caches only)."""
from __future__ import annotations

import asyncio
import time

from creative_sync.bench import CpuMeter
from creative_sync.bench_scale import ACCOUNT, grow, list_costs, rss_kib
from creative_sync.processes import GatewayProcess
from gateway.auth import PrincipalStore

BYTES_PER_CREATIVE = 300  # the bound: 0.3 KB (it was ~3 KB when the gateway held every library)


async def _a2a_call(base_url: str, token: str) -> None:
    import aiohttp

    message = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
        "role": "user", "messageId": "m-1", "kind": "message",
        "parts": [{"kind": "data", "data": {"skill": "list_creative_formats", "parameters": {}}}]}}}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        async with session.post(f"{base_url}/a2a", json=message, headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200 and "result" in await response.json()


async def test_twenty_thousand_creatives_leave_the_gateways_memory_where_it_was(topics_created, ready_worker, tmp_path):
    token = PrincipalStore(topics_created.principals_file).add("scale", [ACCOUNT])[1]
    gateway = GatewayProcess(topics_created.with_(request_budget_s=20), tmp_path / "gateway.log").start()
    cpu = CpuMeter()
    cpu.watch("gateway", gateway.process.pid)
    cpu.watch("worker", ready_worker.process.pid)
    try:
        # Warm up every path first (connections, caches, the task results cache at its bound's scale,
        # and A2A: the adcp SDK's binding, preloaded after the start, is ~400 MB of pydantic types).
        await grow(gateway.base_url, token, 0, 3_000)
        await list_costs(gateway.base_url, token, cpu, rounds=6)
        await _a2a_call(gateway.base_url, token)
        await asyncio.sleep(1)
        before = rss_kib(gateway.process.pid)
        await grow(gateway.base_url, token, 3_000, 23_000)
        reads = await list_costs(gateway.base_url, token, cpu, rounds=6)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # let freed buffers go back before reading the figure
            await asyncio.sleep(0.5)
        grown = (rss_kib(gateway.process.pid) - before) * 1024
        assert reads["first_page"]["total_matching"] == 23_000 and reads["filtered_page"]["total_matching"] == 2_300
        assert grown < BYTES_PER_CREATIVE * 20_000, f"the gateway grew {grown / 20_000:.0f} bytes per creative"
    finally:
        gateway.stop(grace_s=5)
