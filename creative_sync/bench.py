"""`creative-sync bench`: what the system does on this machine, next to what the raw broker does
in the same run (so figures compare across machines as ratios).

Parts: raw broker produce/consume rate and one-hop latency; worker join time; library
throughput (commands/s) and per-hop latency p50/p99 (command → task result, from the records'
broker timestamps); rejoin time after kill -9 of the worker.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from creative_sync.broker import EmbeddedBroker, free_port
from creative_sync.processes import GatewayProcess, WorkerProcess
from creative_sync.samples import display_creative, sync_request
from creative_sync.settings import Settings
from topics.admin import ensure_topics
from topics.catalogue import Codecs, all_specs, topic
from topics.events import LibraryCommand, LibraryOperation


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


_last_drawn: dict[str, int] = {}
#: The fewest messages the raw broker's rates are measured over, whatever --events says: over 50
#: (the deliveries command) they could measure a first batch's latency: 5,300–6,200 msg/s where
#: 20,000 messages gave ~32,000 the same day, which made the "× raw" ratios next to them meaningless.
RAW_BROKER_MESSAGES = 20_000


class CpuMeter:
    """CPU seconds used so far by each process of the run (Linux /proc; empty elsewhere).

    On a shared two-core machine rates move with whatever else runs; the CPU a part costs per
    1,000 creatives or deliveries, per process, moves far less and says where the time goes.
    """

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def watch(self, name: str, pid: int | None) -> None:
        if pid:
            self.pids[name] = pid

    def snapshot(self) -> dict[str, float]:
        seconds = {"bench": sum(os.times()[:2])}  # this process: clients and, in the sync part, the sim agents
        for name, pid in self.pids.items():
            spent = self.process_cpu_s(pid)
            if spent is not None:
                seconds[name] = spent
        return seconds

    def process_cpu_s(self, pid: int) -> float | None:
        """CPU seconds (user + system) process `pid` has used so far."""
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime

    @staticmethod
    def per_thousand(before: dict[str, float], after: dict[str, float], units: int) -> dict[str, float]:
        """Milliseconds of CPU per 1,000 units, per process."""
        return {name: (after[name] - before[name]) * 1e6 / max(units, 1) for name in after if name in before}


def cpu_text(per_thousand: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:,.0f} ms" for name, ms in per_thousand.items())


def progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    if _last_drawn.get(label) == filled and done < total:
        return
    _last_drawn[label] = filled
    sys.stderr.write(f"\r  {label:28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


class Bench:
    def __init__(self, settings: Settings, codecs: Codecs) -> None:
        self.settings, self.codecs = settings, codecs
        self.bootstrap = settings.bootstrap_servers
        self.commands = topic("library_commands").full_name(settings.topic_prefix)
        self.results = topic("task_results").full_name(settings.topic_prefix)

    def command(self, i: int, run: str) -> tuple[bytes, bytes]:
        account = f"acct-{i % 16}"
        body = sync_request(account, [display_creative(f"c{i}", name=f"bench {i}")], idempotency_key=f"bench-{run}-{i:08d}")
        event = LibraryCommand(command_id=f"{run}-{i}", account_id=account, principal_id="bench",
                               operation=LibraryOperation.SYNC_CREATIVES, request_json=json.dumps(body),
                               received_at=datetime.now(UTC))
        return self.codecs.key("library_commands").encode(account), self.codecs.value("library_commands").encode(event)

    async def raw_broker(self, n: int) -> dict[str, float]:
        name = f"{self.settings.topic_prefix}bench.raw"
        from topics.catalogue import TopicSpec

        await ensure_topics(self.bootstrap, [TopicSpec("raw", name, 8, "-", "task_result", "delete", "bench")])
        payload = b"x" * 300
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        started = time.perf_counter()
        futures = [await producer.send(name, key=str(i % 64).encode(), value=payload) for i in range(n)]
        await asyncio.gather(*futures)
        produce_rate = n / (time.perf_counter() - started)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, fetch_max_wait_ms=self.settings.fetch_max_wait_ms)
        await consumer.start()
        partitions = [TopicPartition(name, p) for p in range(8)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started, seen = time.perf_counter(), 0
        while seen < n:
            seen += sum(len(b) for b in (await consumer.getmany(timeout_ms=1000)).values())
        consume_rate = n / (time.perf_counter() - started)
        hops = []  # one message at a time: produce → consumer receives it
        for i in range(200):
            sent = time.perf_counter()
            await producer.send_and_wait(name, key=b"hop", value=payload)
            while not any((await consumer.getmany(timeout_ms=1000)).values()):
                pass
            hops.append(time.perf_counter() - sent)
        await consumer.stop()
        await producer.stop()
        return {"produce_per_s": produce_rate, "consume_per_s": consume_rate,
                "hop_p50_ms": percentile(hops, 0.5) * 1000, "hop_p99_ms": percentile(hops, 0.99) * 1000}

    async def _results_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, fetch_max_wait_ms=self.settings.fetch_max_wait_ms)
        await consumer.start()
        partitions = [TopicPartition(self.results, p) for p in range(topic("task_results").partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        return consumer

    async def wait_results(self, consumer: AIOKafkaConsumer, wanted: set[str], label: str | None = None,
                           timeout_s: float = 300) -> dict[str, int]:
        """task_id → the result record's broker timestamp (ms), for every wanted task id."""
        found: dict[str, int] = {}
        deadline = time.monotonic() + timeout_s
        decode = self.codecs.value("task_results").decode
        while not wanted <= found.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(wanted - found.keys())} results missing")
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for record in batch:
                    task_id = decode(record.value).task_id
                    if task_id in wanted:
                        found.setdefault(task_id, record.timestamp)
            if label:
                progress(label, len(found), len(wanted))
        return found

    async def throughput(self, n: int) -> dict[str, float]:
        run = uuid.uuid4().hex[:6]
        consumer = await self._results_consumer()
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        started = time.perf_counter()
        messages = [self.command(i, run) for i in range(n)]
        futures = [await producer.send(self.commands, key=k, value=v) for k, v in messages]
        await asyncio.gather(*futures)
        await self.wait_results(consumer, {f"{run}-{i}" for i in range(n)}, "library commands")
        elapsed = time.perf_counter() - started
        await producer.stop()
        await consumer.stop()
        return {"commands_per_s": n / elapsed}

    async def hop_latency(self, n: int, rate_per_s: float = 100) -> dict[str, float]:
        """Paced commands, latency = result timestamp − command timestamp (both set by the broker clients)."""
        run = uuid.uuid4().hex[:6]
        consumer = await self._results_consumer()
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0)
        await producer.start()
        sent_at: dict[str, int] = {}
        for i in range(n):
            key, value = self.command(i, run)
            metadata = await producer.send_and_wait(self.commands, key=key, value=value)
            sent_at[f"{run}-{i}"] = metadata.timestamp
            await asyncio.sleep(1 / rate_per_s)
        found = await self.wait_results(consumer, set(sent_at))
        await producer.stop()
        await consumer.stop()
        latencies = [found[t] - sent_at[t] for t in sent_at]
        return {"p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
                "mean_ms": statistics.fmean(latencies)}

    async def gateway_sync(self, gateway: GatewayProcess, token: str, requests: int, *, per_request: int = 100,
                           concurrency: int = 8, cpu: CpuMeter | None = None) -> dict[str, object]:
        """sync_creatives through the real gateway (REST), `per_request` creatives a request, answered
        `completed` by the pipeline; a request answered `submitted` counts as accepted, not completed.

        Two requests per client go first as a warm-up, before the clock starts, and are not counted:
        the first requests to fresh processes open connections and fill caches (they took up to
        ~230 ms where the steady state's slowest took ~190 ms)."""
        import aiohttp

        run = uuid.uuid4().hex[:6]
        warm_up = 2 * concurrency
        latencies: list[float] = []
        outcomes = {"completed": 0, "submitted": 0, "failed": 0}
        queue: asyncio.Queue[int] = asyncio.Queue()
        headers = {"Authorization": f"Bearer {token}"}

        async def client(session: aiohttp.ClientSession, measured: bool = True) -> None:
            while not queue.empty():
                i = queue.get_nowait()
                account = f"bench-{i % 16}"
                body = sync_request(account, [display_creative(f"{run}-{i}-{j}") for j in range(per_request)],
                                    idempotency_key=f"bench-{run}-{i:08d}")
                started = time.perf_counter()
                async with session.post(f"{gateway.base_url}/api/v1/sync_creatives", json=body, headers=headers) as response:
                    answer = await response.json()
                if not measured:
                    continue
                latencies.append(time.perf_counter() - started)
                status = answer.get("status") if response.status < 300 else "failed"
                outcomes["submitted" if status == "submitted" else "failed" if status == "failed" else "completed"] += 1
                progress("sync_creatives via gateway", len(latencies), requests)

        cpu = cpu or CpuMeter()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            for i in range(requests, requests + warm_up):
                queue.put_nowait(i)
            await asyncio.gather(*(client(session, measured=False) for _ in range(concurrency)))
            for i in range(requests):
                queue.put_nowait(i)
            started, cpu_before = time.perf_counter(), cpu.snapshot()
            await asyncio.gather(*(client(session) for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        return {"cpu_ms_per_1000_creatives": cpu.per_thousand(cpu_before, cpu.snapshot(), requests * per_request),
                "creatives_per_s": outcomes["completed"] * per_request / elapsed,
                "requests_per_s": requests / elapsed, "p50_ms": percentile(latencies, 0.5) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000, "warm_up_requests": warm_up,
                **{f"requests_{k}": v for k, v in outcomes.items()}}

    async def first_result_after(self, worker: WorkerProcess, run: str) -> float:
        """Seconds from the worker's start until it has processed a fresh probe command."""
        consumer = await self._results_consumer()
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        key, value = self.command(0, run)
        await producer.send_and_wait(self.commands, key=key, value=value)
        await self.wait_results(consumer, {f"{run}-0"}, timeout_s=180)
        elapsed = time.monotonic() - worker.started_at
        await producer.stop()
        await consumer.stop()
        return elapsed


def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    broker = None
    workdir = Path(tempfile.mkdtemp(prefix="creative-sync-bench-"))
    if not settings.bootstrap_servers:
        broker = EmbeddedBroker()
        broker.start()
    namespace = uuid.uuid4().hex[:8]
    settings = settings.with_(bootstrap_servers=settings.bootstrap_servers or broker.bootstrap,
                              topic_prefix=f"bench{namespace}.", app_id=f"bench-{namespace}",
                              data_dir=workdir, worker_port=free_port(), gateway_port=free_port(), log_format="text",
                              principals_file=workdir / "principals.json",
                              allow_private_targets=True)  # its simulated agents listen on loopback
    bench = Bench(settings, Codecs(prefix=settings.topic_prefix))
    worker = gateway = None
    report: dict[str, object] = {"broker": "embedded Tansu" if broker else settings.bootstrap_servers,
                                 "fetch_max_wait_ms": settings.fetch_max_wait_ms,
                                 "session_timeout_s": settings.session_timeout_s}
    say = (lambda *a, **k: None) if args.json else print
    try:
        say(f"creative-sync bench on {settings.bootstrap_servers} ({report['broker']}), "
            f"fetch wait {settings.fetch_max_wait_ms} ms, session timeout {settings.session_timeout_s} s")
        asyncio.run(ensure_topics(settings.bootstrap_servers, all_specs(settings.app_id), settings.topic_prefix))
        raw = report["raw_broker"] = asyncio.run(bench.raw_broker(max(args.events, RAW_BROKER_MESSAGES)))
        worker = WorkerProcess(settings, workdir / "worker.log").start()
        joined = worker.wait_assigned(120)
        first = asyncio.run(bench.first_result_after(worker, "join"))
        report["join"] = {"assigned_s": joined, "first_event_s": first}
        throughput = report["library"] = asyncio.run(bench.throughput(args.events))
        worker.wait_idle()  # the hop is timed on a quiet pipeline, not behind what the part above left
        hop = report["hop"] = asyncio.run(bench.hop_latency(300))
        rejoins = []  # on an idle pipeline: nothing queued ahead of the probe
        for round_ in range(args.rejoins):
            worker.kill9()
            worker = WorkerProcess(settings, workdir / f"worker-{round_}.log").start()
            rejoins.append(asyncio.run(bench.first_result_after(worker, f"rejoin{round_}")))
        report["rejoin_after_kill9_s"] = rejoins
        from gateway.auth import PrincipalStore

        token = PrincipalStore(settings.principals_file).add("bench", [*(f"bench-{i}" for i in range(16)), "bench-scale", "bench-idle", "bench-failover"])[1]
        gateway = GatewayProcess(settings, workdir / "gateway.log").start()
        gateway.wait_settled()  # its start-up work (the SDK's A2A binding) is not part of the figures
        cpu = CpuMeter()
        for name, process in (("worker", worker.process), ("gateway", gateway.process), ("broker", broker and broker.process)):
            cpu.watch(name, process.pid if process else None)
        idle = None
        if args.idle:
            from creative_sync.bench_idle import idle_part

            progress("idle stack", 0, 1)
            idle = report["idle"] = asyncio.run(idle_part(gateway.base_url, token, cpu, seconds=args.idle_seconds))
            progress("idle stack", 1, 1)
        via_gateway = report["sync_creatives"] = asyncio.run(
            bench.gateway_sync(gateway, token, args.requests, concurrency=args.concurrency, cpu=cpu))
        synced = None
        if args.sync_creatives:
            from creative_sync.bench_sync import sync_part

            synced = report["sync"] = asyncio.run(sync_part(
                gateway.base_url, token, agents=args.agents, creatives=args.sync_creatives, rate=args.update_rate,
                updates=args.updates, progress=progress, cpu=cpu))
        scale = None
        if args.scale:
            from creative_sync.bench_scale import restart_cpu_s, scale_part

            sizes = tuple(int(n) for n in args.scale_sizes.split(","))
            scale = report["scale"] = asyncio.run(scale_part(gateway, token, cpu, sizes, progress=progress))
            scale["gateway_restart_cpu_s"], scale["gateway_restart_wall_s"] = restart_cpu_s(gateway, cpu)
            cpu.watch("gateway", gateway.process.pid)
        failover = None
        if args.failover:
            from creative_sync.bench_failover import failover_part

            failover = report["failover"] = asyncio.run(failover_part(
                settings, gateway.base_url, token, worker, workdir, library=args.failover_library,
                creatives=args.failover_creatives, agents=args.agents, progress=progress))
        if args.json:
            print(json.dumps(report, indent=2))
            return 0
        print()
        print(f"{'raw broker':34} produce {raw['produce_per_s']:>9,.0f} msg/s   consume {raw['consume_per_s']:>9,.0f} msg/s")
        print(f"{'raw broker one hop':34} p50 {raw['hop_p50_ms']:7.1f} ms   p99 {raw['hop_p99_ms']:7.1f} ms")
        print(f"{'worker joins a fresh group':34} {joined:5.1f} s (partitions assigned)   "
              f"{first:5.1f} s (first event processed)")
        print(f"{'library commands (1 creative)':34} {throughput['commands_per_s']:>9,.0f} /s   "
              f"= {throughput['commands_per_s'] / raw['consume_per_s']:.3f} × raw consume")
        print(f"{'hop: command → task result':34} p50 {hop['p50_ms']:7.1f} ms   p99 {hop['p99_ms']:7.1f} ms   "
              f"(raw hop p50 × {hop['p50_ms'] / max(raw['hop_p50_ms'], 0.001):.1f})")
        print(f"{'sync_creatives via gateway':34} {via_gateway['creatives_per_s']:>9,.0f} creatives/s completed "
              f"({args.concurrency} clients, 100 a request; {via_gateway['creatives_per_s'] / raw['produce_per_s']:.3f} "
              f"× raw produce)   request p50 {via_gateway['p50_ms']:.0f} ms   p99 {via_gateway['p99_ms']:.0f} ms   "
              f"({via_gateway['requests_submitted']} of {args.requests} requests answered `submitted`; "
              f"after {via_gateway['warm_up_requests']} warm-up requests)")
        print(f"{'  CPU per 1,000 creatives':34} {cpu_text(via_gateway['cpu_ms_per_1000_creatives'])}")
        if synced:
            print(f"{'deliveries to sim agents':34} {synced['deliveries_per_s']:>9,.0f} (creative, agent)/s "
                  f"({synced['deliveries']:,} to {synced['agents']} agents; "
                  f"{synced['deliveries_per_s'] / raw['produce_per_s']:.3f} × raw produce)   "
                  f"approvals in the status {synced['approvals_per_s']:,.0f}/s")
            print(f"{'  CPU per 1,000 deliveries':34} {cpu_text(synced['cpu_ms_per_1000_deliveries'])} "
                  "(until every approval is recorded; bench: the sim agents and the clients)")
            print(f"{'content update → receipt at agent':34} p50 {synced['latency_p50_ms']:7.0f} ms   "
                  f"p99 {synced['latency_p99_ms']:7.0f} ms   (updates offered at {synced['update_rate_offered_per_s']:,.0f} "
                  f"creatives/s × {synced['agents']} agents; {synced['update_deliveries']:,} of "
                  f"{synced['update_deliveries_expected']:,} re-syncs received)")
        if idle:
            print(f"{'idle stack, CPU per second':34} " + ", ".join(f"{k} {v:.3f}" for k, v in idle["cpu_s_per_s"].items())
                  + f"   total {idle['total_cpu_s_per_s']:.3f} CPU-s/s over {idle['seconds']:.0f} s (target ≤ 0.05)")
            print(f"{'  first request after idle':34} sync_creatives of 1 creative {idle['first_request_ms']:.0f} ms, "
                  f"the next one {idle['next_request_ms']:.0f} ms")
        if scale:
            for size, figures in scale["sizes"].items():
                print(f"{f'library of {size:,} creatives':34} gateway RSS {figures['gateway_rss_kib'] / 1024:,.0f} MiB   "
                      f"loaded at {figures['load_creatives_per_s']:,.0f} creatives/s")
                for name in ("first_page", "filtered_page", "name_sorted_page"):
                    read = figures[name]
                    print(f"{'  list_creatives ' + name.replace('_', ' '):34} CPU {read['cpu_ms_per_request']:6.1f} ms/request "
                          f"(gateway + worker)   p50 {read['p50_ms']:6.1f} ms   p99 {read['p99_ms']:6.1f} ms")
            print(f"{'gateway RSS growth':34} {scale['gateway_rss_growth_bytes_per_creative']:,.0f} bytes per creative")
            print(f"{'list CPU, largest ÷ smallest':34} " + ", ".join(
                f"{k.replace('_', ' ')} × {v:.2f}" for k, v in scale["cpu_ratio_large_to_small"].items()))
            print(f"{'gateway restart → /readyz':34} {scale['gateway_restart_cpu_s']:5.2f} CPU-s   "
                  f"{scale['gateway_restart_wall_s']:5.1f} s   (library of {max(scale['sizes']):,})")
        if failover:
            def secs(value: float | None) -> str:
                return "n/a" if value is None else f"{value:.1f} s"
            print(f"{'failover (kill -9 of 1 of 2 workers)':34} library of {failover['library']:,} creatives, "
                  f"{failover['deliveries']:,} deliveries to {args.agents} agents, killed after "
                  f"{failover['delivered_at_kill']:,}: the dead worker's agents received again after "
                  f"{secs(failover['resumed_after_s'])} (target ≤ 15 s)")
            print(f"{'  survivor and settlement':34} the survivor's agents' longest pause {secs(failover['survivor_longest_pause_s'])}; "
                  f"all delivered {secs(failover['all_done_after_kill_s'])} after the kill; {failover['delivered']:,} of "
                  f"{failover['deliveries']:,} received, {failover['pairs_missing']} pairs missing, "
                  f"{failover['pairs_under_two_keys']} under two keys")
        for i, seconds in enumerate(rejoins):
            print(f"{'rejoin after kill -9, round ' + str(i + 1):34} {seconds:5.1f} s (restart → first event processed)")
        return 0
    finally:
        if gateway:
            gateway.stop()
        if worker:
            worker.stop()
        if broker:
            broker.stop()
