"""`creative-sync up`: the whole system in one command — broker (unless KAFKA_BOOTSTRAP_SERVERS is
set), topics, a worker, the gateway and simulated sales agents as child processes, and a demo
seeded through the API once the gateway is ready and the agents listen, however long that takes.
It supervises them: a child that dies is started again (with a backoff) while the broker lives; a
dead embedded broker stops everything with one message. The console shows one line per event that
matters (creative_sync.console); the children's JSON logs go to <data dir>/log/. Ctrl-C stops it all."""
from __future__ import annotations

import asyncio
import json
import multiprocessing.forkserver
import os
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from creative_sync.broker import EmbeddedBroker, ports_free
from creative_sync.demo import seed
from creative_sync.console import Backoff, Console
from creative_sync.processes import preload_children, spawn
from creative_sync.settings import Settings
from creative_sync.sim_agents import DEMO_AGENTS
from creative_sync.samples import display_creative, sync_request
from gateway.auth import PrincipalStore
from topics.admin import ensure_topics
from topics.catalogue import all_specs


def wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status < 500:
                    return True
        except urllib.error.HTTPError as error:  # answering at all (401, 405...) is up
            if error.code < 500:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def spawn_sim_agents(settings: Settings, port: int, token: str, **popen) -> subprocess.Popen:
    """The simulated sales agents, their token in the environment: not on the command line, which
    `ps` shows to every user of the machine."""
    return spawn("sim-agents", settings, "--port", str(port), env_extra={"CREATIVE_SYNC_SIM_TOKEN": token}, **popen)


class Supervised:
    """A child of `up`, started again with a backoff when it exits while the system runs."""

    def __init__(self, name: str, start: Callable[[], subprocess.Popen]) -> None:
        self.name, self._start = name, start
        self.backoff = Backoff()
        self.process = start()
        self.started_at = time.monotonic()
        self.restart_at: float | None = None
        say(f"{name:8} started (pid {self.process.pid})")

    def check(self, now: float) -> None:
        if self.restart_at is None and self.process.poll() is not None:
            delay = self.backoff.delay(now - self.started_at)
            self.restart_at = now + delay
            say(f"{self.name:8} exited ({_exit_status(self.process.poll())}); starting it again in {delay:.0f} s")
        elif self.restart_at is not None and now >= self.restart_at:
            self.process, self.started_at, self.restart_at = self._start(), now, None
            say(f"{self.name:8} restarted (pid {self.process.pid})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _exit_status(code: int | None) -> str:
    return f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"


def say(line: str) -> None:
    print(line, flush=True)


class LogTail(threading.Thread):
    """Reads the children's log files as they grow and prints the console's lines (creative_sync.console)."""

    def __init__(self, files: dict[str, Path], stop: threading.Event) -> None:
        super().__init__(name="up-console", daemon=True)
        self.files, self.stop, self.console = files, stop, Console()

    def run(self) -> None:
        offsets = {role: 0 for role in self.files}
        while not self.stop.wait(0.5):
            for role, path in self.files.items():
                try:
                    with path.open("rb") as log:
                        log.seek(offsets[role])
                        chunk = log.read()
                except OSError:
                    continue
                complete = chunk[: chunk.rfind(b"\n") + 1]
                offsets[role] += len(complete)
                for raw in complete.decode(errors="replace").splitlines():
                    line = self.console.line(role, raw, time.monotonic())
                    if line:
                        say(line)


def wait_ready(url: str, alive: Callable[[], bool], what: str, patience_s: float = 15.0) -> bool:
    """Until `url` answers below 500 (however long it takes while `alive()`); says so when it takes a while."""
    told = False
    deadline = time.monotonic() + patience_s
    while alive():
        if wait_http(url, 1.0):
            return True
        if not told and time.monotonic() > deadline:
            say(f"waiting for {what} …")
            told = True
    return False


def ports_taken(settings: Settings, sim_port: int) -> list[str]:
    """The listening ports `up` needs that something else holds (another `up`, most often: its
    gateway would answer our demo with 401 and our children would die on start, one by one)."""
    wanted = [("gateway", settings.gateway_host, settings.gateway_port, "CREATIVE_SYNC_GATEWAY_PORT"),
              ("worker", settings.worker_host, settings.worker_port, "CREATIVE_SYNC_WORKER_PORT")]
    wanted += [(f"simulated agent {i + 1}", "127.0.0.1", sim_port + i, "CREATIVE_SYNC_SIM_PORT")
               for i in range(len(DEMO_AGENTS))]
    return [f"{what} port {host}:{port} is in use (set {setting})"
            for what, host, port, setting in wanted if not ports_free(host, port)]


def run_up(settings: Settings) -> int:
    sim_port = int(os.environ.get("CREATIVE_SYNC_SIM_PORT", "9100"))
    taken = ports_taken(settings, sim_port)
    if taken:
        say("not started: " + "; ".join(taken) + ". Is another `creative-sync up` running?")
        return 1
    broker: EmbeddedBroker | None = None
    children: list[Supervised] = []
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log_dir = settings.data_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = {role: log_dir / f"{role}.log" for role in ("worker", "gateway", "agents")}
    tail = LogTail(logs, stop)
    try:
        token = None
        if not settings.bootstrap_servers:
            broker = EmbeddedBroker()
            broker.start()
            # The embedded broker keeps everything in memory: so do the worker's tables and a
            # fresh demo principal, or they would outlive the data they describe.
            run_dir = settings.data_dir / "up"
            principals = run_dir / "principals.json"
            principals.unlink(missing_ok=True)
            settings = settings.with_(bootstrap_servers=broker.bootstrap, store="memory://", principals_file=principals)
            _, token = PrincipalStore(principals).add("demo", ["demo"])
        # The simulated agents listen on loopback: the development allowance of the outbound policy.
        settings = settings.with_(allow_private_targets=True)
        states = asyncio.run(ensure_topics(settings.bootstrap_servers, all_specs(settings.app_id), settings.topic_prefix))
        say(f"broker   {settings.bootstrap_servers} ({'embedded Tansu, in memory' if broker else 'external'}), "
            f"{len(states)} topics; logs in {log_dir}/")
        sim_token = secrets.token_urlsafe(24)

        def child(role: str) -> Callable[[], subprocess.Popen]:
            def start() -> subprocess.Popen:
                with logs[role].open("ab") as log:  # the child holds its own descriptor
                    if role == "agents":
                        return spawn_sim_agents(settings, sim_port, sim_token, stdout=log, stderr=subprocess.STDOUT)
                    return spawn(role, settings, stdout=log, stderr=subprocess.STDOUT)
            return start
        children = [Supervised(role, child(role)) for role in ("worker", "gateway", "agents")]
        tail.start()
        # Restarts fork from a server that imports the adcp SDK once, beside the first start
        # (creative_sync.processes): a restarted worker is back in seconds, not after a ~20 s import.
        preload_children()
        multiprocessing.forkserver.ensure_running()

        def running() -> bool:
            return supervise(children, broker, stop)
        sim_urls = [f"http://127.0.0.1:{sim_port + i}/mcp" for i in range(len(DEMO_AGENTS))]
        base = f"http://{settings.gateway_host}:{settings.gateway_port}"
        worker_metrics = f"http://{settings.worker_host}:{settings.worker_port}/metrics"
        if not wait_ready(f"{base}/readyz", running, "the gateway (it loads the adcp SDK: ~20 s on a busy machine)"):
            return 0 if stop.is_set() else 1
        say("\ncreative-sync is up")
        say(f"  API        {base}/api/v1/   (REST, OpenAPI at {base}/api/v1/openapi.json)   MCP at {base}/mcp")
        say(f"  dashboard  {base}/")
        say(f"  metrics    {base}/metrics  (gateway)   {worker_metrics}  (worker)")
        if token and wait_ready(sim_urls[-1], running, "the simulated sales agents"):
            seeded = False
            for attempt in range(5):  # a child restarting meanwhile: try again
                try:
                    for line in seed(base, token, "demo", sim_urls, sim_token):
                        say(f"  demo       {line}")
                    seeded = True
                    break
                except OSError as error:
                    say(f"  demo       not seeded yet ({error}); trying again")
                    if not running() or stop.wait(2.0 * (attempt + 1)):
                        break
            if not seeded:
                say("  demo       not seeded: see the logs")
            say("  status     curl -s -X POST " + base + "/api/v1/get_creative_sync_status -H 'Authorization: Bearer "
                + token + """' -d '{"account":{"account_id":"demo"},"creative_ids":["demo-banner","demo-video"]}'""")
            say("  health     curl -s -X POST " + base + "/api/v1/list_campaigns -H 'Authorization: Bearer "
                + token + """' -d '{"account":{"account_id":"demo"}}'""")
            say("  alerts     curl -s -X POST " + base + "/api/v1/list_notifications -H 'Authorization: Bearer "
                + token + """' -d '{"account":{"account_id":"demo"},"urgency":["high","medium"]}'""")
            say(f"  live       {base}/#token={token}&account=demo   (campaign health and notifications, live)")
        if token:
            example = json.dumps(sync_request("demo", [display_creative("c1", name="Hello")],
                                              idempotency_key="first-sync-0000001"), separators=(",", ":"))
            say("  demo token (account 'demo'): " + token)
            say(f"  try: curl -s -X POST {base}/api/v1/sync_creatives -H 'Authorization: Bearer {token}' \\\n"
                f"         -H 'Content-Type: application/json' -d '{example}'")
            say(f"       curl -s -X POST {base}/api/v1/list_creatives -H 'Authorization: Bearer {token}' "
                """-d '{"account":{"account_id":"demo"}}'""")
        say("Ctrl-C stops everything; a child that dies is started again.\n")
        while running():
            stop.wait(0.5)
        return 0 if stop.is_set() else 1
    finally:
        stop.set()
        for supervised in children:
            supervised.stop()
        for supervised in children:
            supervised.wait()
        if broker:
            broker.stop()


def supervise(children: list[Supervised], broker: EmbeddedBroker | None, stop: threading.Event) -> bool:
    """One round of supervision; whether the system goes on. A dead embedded broker ends it: what
    it held in memory is gone, and children restarted against it would find nothing."""
    if stop.is_set():
        return False
    if broker is not None and broker.process is not None and broker.process.poll() is not None:
        say("the embedded broker stopped: its in-memory data (the library, the agents, everything) is gone. "
            "Stopping everything; `make up` starts afresh.")
        return False
    now = time.monotonic()
    for supervised in children:
        supervised.check(now)
    return True
