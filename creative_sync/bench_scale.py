"""`creative-sync bench --scale`: what a growing library costs. One account grows to 10k and then to
100k creatives (through the gateway); at each size: the gateway's resident memory, and the CPU
(gateway + worker) and latency of list_creatives' first page, a next page and a filtered page;
then a gateway restart to /readyz, in CPU seconds. The raw broker's figures of the same run sit
next to them in the report (bench.py).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from creative_sync.samples import display_creative, sync_request, video_creative

ACCOUNT = "bench-scale"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def grow(base_url: str, token: str, start: int, stop: int, *, concurrency: int = 8,
               progress: Callable[[str, int, int], None] | None = None, account: str = ACCOUNT) -> float:
    """Creatives s<start>..s<stop-1> into `account` (100 a request; every 10th a video); creatives/s."""
    headers = {"Authorization": f"Bearer {token}"}
    run = uuid.uuid4().hex[:6]
    requests = list(range(start, stop, 100))
    done = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while requests:
            first = requests.pop()
            creatives = [(video_creative if n % 10 == 0 else display_creative)(f"s{n:07}") for n in range(first, min(first + 100, stop))]
            body = sync_request(account, creatives, idempotency_key=f"scale-{run}-{first:08}")
            async with session.post(f"{base_url}/api/v1/sync_creatives", json=body, headers=headers) as response:
                answer = await response.json()
                if response.status != 200 or answer.get("status") not in (None, "completed", "submitted"):
                    raise RuntimeError(f"sync_creatives failed: {answer}")
            done += len(creatives)
            if progress:
                progress(f"library grows to {stop:,}", done, stop - start)

    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return (stop - start) / (time.perf_counter() - started)


async def list_costs(base_url: str, token: str, cpu: Any, *, rounds: int = 40) -> dict[str, dict[str, float]]:
    """CPU (gateway + worker, ms per request) and latency of three reads, each `rounds` times in a row."""
    headers = {"Authorization": f"Bearer {token}"}
    account = {"account_id": ACCOUNT}
    reads = {
        "first_page": {"account": account, "pagination": {"max_results": 50}},
        "filtered_page": {"account": account, "filters": {"format_kinds": ["video_hosted"]}, "pagination": {"max_results": 50}},
        "name_sorted_page": {"account": account, "sort": {"field": "name", "direction": "asc"}, "pagination": {"max_results": 50}},
    }
    figures: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def read(body: dict[str, Any]) -> dict[str, Any]:
            async with session.post(f"{base_url}/api/v1/list_creatives", json=body, headers=headers) as response:
                answer = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"list_creatives failed: {answer}")
                return answer

        for name, body in reads.items():
            await read(body)  # warm: connections, caches
            first = await read(body)
            cursor = first["pagination"].get("cursor")
            latencies = []
            before = cpu.snapshot()
            for i in range(rounds):
                started = time.perf_counter()
                # alternately the page itself and the page after it (a cursor walk)
                await read(body if i % 2 == 0 or not cursor else {**body, "pagination": {"max_results": 50, "cursor": cursor}})
                latencies.append((time.perf_counter() - started) * 1000)
            after = cpu.snapshot()
            spent = sum(after.get(p, 0) - before.get(p, 0) for p in ("gateway", "worker"))
            latencies.sort()
            figures[name] = {"cpu_ms_per_request": spent * 1000 / rounds, "p50_ms": latencies[len(latencies) // 2],
                             "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
                             "total_matching": first["query_summary"]["total_matching"]}
    return figures


def restart_cpu_s(gateway: Any, cpu: Any, timeout_s: float = 120) -> tuple[float, float]:
    """Stop the gateway, start it again: (CPU seconds, wall seconds) until /readyz answers 200."""
    import urllib.request

    gateway.stop()
    gateway.start()
    started = time.monotonic()
    while time.monotonic() < started + timeout_s:
        try:
            with urllib.request.urlopen(f"{gateway.base_url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    wall = time.monotonic() - gateway.started_at
    cpu_s = cpu.process_cpu_s(gateway.process.pid)
    return cpu_s, wall


async def scale_part(gateway: Any, token: str, cpu: Any, sizes: tuple[int, ...] = (10_000, 100_000),
                     progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {"sizes": {}}
    size = 0
    for target in sizes:
        rate = await grow(gateway.base_url, token, size, target, progress=progress)
        size = target
        await asyncio.sleep(2)  # the last commands applied, the gateway's memory settled
        report["sizes"][size] = {"load_creatives_per_s": rate, "gateway_rss_kib": rss_kib(gateway.process.pid),
                                 **await list_costs(gateway.base_url, token, cpu)}
    small, large = (report["sizes"][s] for s in (sizes[0], sizes[-1]))
    report["gateway_rss_growth_bytes_per_creative"] = ((large["gateway_rss_kib"] - small["gateway_rss_kib"]) * 1024
                                                       / (sizes[-1] - sizes[0]))
    report["cpu_ratio_large_to_small"] = {name: large[name]["cpu_ms_per_request"] / max(small[name]["cpu_ms_per_request"], 1e-6)
                                          for name in ("first_page", "filtered_page", "name_sorted_page")}
    return report
