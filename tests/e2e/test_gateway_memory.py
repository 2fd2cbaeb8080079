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


async def test_twenty_thousand_creatives_leave_the_gateways_memory_where_it_was(topics_created, ready_worker, tmp_path):
    token = PrincipalStore(topics_created.principals_file).add("scale", [ACCOUNT])[1]
    gateway = GatewayProcess(topics_created.with_(request_budget_s=20), tmp_path / "gateway.log").start()
    cpu = CpuMeter()
    cpu.watch("gateway", gateway.process.pid)
    cpu.watch("worker", ready_worker.process.pid)
    try:
        # Warm up every path first (connections, caches, the task results cache at its bound's scale).
        await grow(gateway.base_url, token, 0, 3_000)
        await list_costs(gateway.base_url, token, cpu, rounds=6)
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
