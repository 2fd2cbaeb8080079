"""`creative-sync bench --idle`: what an idle stack costs, and what its first request then waits.

The broker, one worker and one gateway sit with nothing to do for `seconds` (after `settle_s`,
so that start-up work and the pacing's busy spell are over); the CPU each process spends is read
from /proc (creative_sync.bench.CpuMeter). Then one sync_creatives request of one creative: its
latency is what a quiet spell costs the next request (on the embedded broker, the paced
consumers' first fetches; see topics.pacing), next to the same request made right after.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp

from creative_sync.samples import display_creative, sync_request


async def idle_part(base_url: str, token: str, cpu: Any, *, seconds: float = 60.0, settle_s: float = 10.0) -> dict[str, Any]:
    await asyncio.sleep(settle_s)
    before, started = cpu.snapshot(), time.monotonic()
    await asyncio.sleep(seconds)
    after, elapsed = cpu.snapshot(), time.monotonic() - started
    per_s = {name: (after[name] - before[name]) / elapsed for name in after if name in before and name != "bench"}
    run = uuid.uuid4().hex[:6]
    latencies = []
    async with aiohttp.ClientSession(base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        for i in range(2):  # the first after the quiet spell, then one right after it
            body = sync_request("bench-idle", [display_creative(f"idle-{run}-{i}")], idempotency_key=f"idle-{run}-{i:04d}")
            sent = time.perf_counter()
            async with http.post("/api/v1/sync_creatives", json=body) as response:
                answer = await response.json()
                if response.status >= 300 or answer.get("status") != "completed":
                    raise RuntimeError(f"sync_creatives after idle: {response.status} {answer}")
            latencies.append((time.perf_counter() - sent) * 1000)
    return {"seconds": elapsed, "cpu_s_per_s": per_s, "total_cpu_s_per_s": sum(per_s.values()),
            "first_request_ms": latencies[0], "next_request_ms": latencies[1]}
