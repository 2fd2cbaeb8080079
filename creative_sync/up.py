"""`creative-sync up`: the whole system in one command — broker (unless KAFKA_BOOTSTRAP_SERVERS is
set), topics, a worker, the gateway and simulated sales agents as child processes, and a demo
seeded through the API; Ctrl-C stops everything."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from creative_sync.broker import EmbeddedBroker
from creative_sync.demo import seed
from creative_sync.processes import spawn
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


def run_up(settings: Settings) -> int:
    broker: EmbeddedBroker | None = None
    children: list[subprocess.Popen] = []
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
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
        children.append(spawn("worker", settings))
        children.append(spawn("gateway", settings))
        sim_port, sim_token = int(os.environ.get("CREATIVE_SYNC_SIM_PORT", "9100")), secrets.token_urlsafe(24)
        children.append(spawn_sim_agents(settings, sim_port, sim_token, stdout=subprocess.DEVNULL))
        sim_urls = [f"http://127.0.0.1:{sim_port + i}/mcp" for i in range(len(DEMO_AGENTS))]
        base = f"http://{settings.gateway_host}:{settings.gateway_port}"
        worker_metrics = f"http://{settings.worker_host}:{settings.worker_port}/metrics"
        wait_http(f"{base}/healthz", 30)
        print("\ncreative-sync is up", flush=True)
        print(f"  broker     {settings.bootstrap_servers} ({'embedded Tansu, in memory' if broker else 'external'}),"
              f" {len(states)} topics")
        print(f"  API        {base}/api/v1/   (REST, OpenAPI at {base}/api/v1/openapi.json)   MCP at {base}/mcp")
        print(f"  dashboard  {base}/")
        print(f"  metrics    {base}/metrics  (gateway)   {worker_metrics}  (worker)")
        if token and wait_http(sim_urls[-1], 30):
            try:
                for line in seed(base, token, "demo", sim_urls, sim_token):
                    print(f"  demo       {line}")
            except OSError as error:  # the system runs without its demo
                print(f"  demo       not seeded: {error}", file=sys.stderr)
            print("  status     curl -s -X POST " + base + "/api/v1/get_creative_sync_status -H 'Authorization: Bearer "
                  + token + """' -d '{"account":{"account_id":"demo"},"creative_ids":["demo-banner","demo-video"]}'""")
            print("  health     curl -s -X POST " + base + "/api/v1/list_campaigns -H 'Authorization: Bearer "
                  + token + """' -d '{"account":{"account_id":"demo"}}'""")
            print("  alerts     curl -s -X POST " + base + "/api/v1/list_notifications -H 'Authorization: Bearer "
                  + token + """' -d '{"account":{"account_id":"demo"},"urgency":["high","medium"]}'""")
            print(f"  live       {base}/#token={token}&account=demo   (campaign health and notifications, every 2 s)")
        if token:
            example = json.dumps(sync_request("demo", [display_creative("c1", name="Hello")],
                                              idempotency_key="first-sync-0000001"), separators=(",", ":"))
            print("  demo token (account 'demo'): " + token)
            print(f"  try: curl -s -X POST {base}/api/v1/sync_creatives -H 'Authorization: Bearer {token}' \\\n"
                  f"         -H 'Content-Type: application/json' -d '{example}'")
            print(f"       curl -s -X POST {base}/api/v1/list_creatives -H 'Authorization: Bearer {token}' "
                  """-d '{"account":{"account_id":"demo"}}'""")
        print("Ctrl-C stops everything.\n", flush=True)
        while not stop.is_set():
            if any(child.poll() is not None for child in children):
                print("a child process exited; stopping", file=sys.stderr)
                return 1
            stop.wait(0.5)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        if broker:
            broker.stop()
