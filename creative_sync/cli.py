"""`creative-sync`: the command line of the whole system."""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

from creative_sync.settings import Settings


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from creative_sync.broker import EmbeddedBroker

    if settings.bootstrap_servers:
        print(f"KAFKA_BOOTSTRAP_SERVERS is set: using {settings.bootstrap_servers}, nothing started.")
        return 0
    broker = EmbeddedBroker(port=args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    broker.start()
    print(broker.bootstrap, flush=True)
    try:
        stop.wait()
    finally:
        broker.stop()
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from topics.catalogue import all_specs

    specs = all_specs(settings.app_id)
    if args.action == "list":
        print(f"{'topic':48} {'part':>4}  {'cleanup':8} {'key':38} value schema")
        for spec in specs:
            print(f"{spec.full_name(settings.topic_prefix):48} {spec.partitions:>4}  {spec.cleanup:8} {spec.key:38} {spec.value_schema}")
        return 0
    if not settings.bootstrap_servers:
        print("KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
        return 2
    from topics.admin import ensure_topics

    states = asyncio.run(ensure_topics(settings.bootstrap_servers, specs, settings.topic_prefix))
    for state in states:
        verdict = "created" if state.created else ("exists" if state.ok else f"MISMATCH: {state.actual_partitions} partitions")
        print(f"{state.name:48} {state.wanted_partitions:>4}  {verdict}")
    return 0 if all(s.ok for s in states) else 1


def refuse_without_secrets(settings: Settings, role: str) -> int:
    """2 (and why, on stderr) when a secret the configuration names is missing; 0 otherwise."""
    missing = settings.missing_secrets()
    for problem in missing:
        print(f"creative-sync {role}: not starting: {problem}", file=sys.stderr)
    return 2 if missing else 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if refused := refuse_without_secrets(settings, "worker"):
        return refused
    from creative_sync.worker import run_worker

    run_worker(settings)
    return 0


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    if refused := refuse_without_secrets(settings, "gateway"):
        return refused
    from creative_sync.gateway_main import run_gateway

    run_gateway(settings)
    return 0


def cmd_secrets(args: argparse.Namespace, settings: Settings) -> int:
    from creative_sync import secrets

    folder = Path(args.dir)
    if args.action == "init":
        created = secrets.init(folder)
        for path in created:
            print(f"created {path} (mode 0600)")
        print(f"{folder}: sealing key and webhook signing key in place" + ("" if created else " (nothing new)"))
        print(f"mount it into every gateway and worker and set CREATIVE_SYNC_SECRETS_DIR={folder}")
        return 0
    if not (args.sealing or args.signing):
        print("secrets rotate: name --sealing, --signing or both", file=sys.stderr)
        return 2
    for path in secrets.rotate(folder, sealing=args.sealing, signing=args.signing):
        print(f"rotated {path}: a new key first, the old ones kept (they still open / verify)")
    return 0


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from creative_sync.up import run_up

    return run_up(settings)


def cmd_principals(args: argparse.Namespace, settings: Settings) -> int:
    """Against the principals topic of KAFKA_BOOTSTRAP_SERVERS (every gateway sees a change within
    seconds); against a principals file with --file, or when no broker is configured."""
    from gateway import principals as in_cluster
    from gateway.auth import PrincipalStore

    use_file = args.file is not None or not settings.bootstrap_servers
    store = PrincipalStore(Path(args.file) if args.file else settings.principals_file) if use_file else None
    where = f"file {store.path}" if store else f"topic {settings.topic_prefix}creative-sync.auth.principals"
    if args.action == "add":
        if store:
            principal, token = store.add(args.name, args.account)
            principal_id, accounts = principal.principal_id, sorted(principal.accounts)
        else:
            record, token = in_cluster.add(settings.bootstrap_servers, settings.topic_prefix, args.name, args.account)
            principal_id, accounts = record.principal_id, record.accounts
        print(f"principal {principal_id} ({args.name}) for accounts {', '.join(accounts)}, in the {where}")
        print(f"token: {token}")
        print("(shown once: only its hash is stored)")
        return 0
    if args.action == "list":
        rows = store.listed() if store else [
            (r.principal_id, r.name, r.accounts, r.revoked) for r in in_cluster.listed(settings.bootstrap_servers, settings.topic_prefix)]
        for principal_id, name, accounts, revoked in rows:
            print(f"{principal_id}\t{name}\t{','.join(accounts)}" + ("\trevoked" if revoked else ""))
        print(f"({len(rows)} in the {where})")
        return 0
    done = store.revoke(args.id) if store else in_cluster.revoke(settings.bootstrap_servers, settings.topic_prefix, args.id)
    if not done:
        print(f"no principal {args.id} in the {where}", file=sys.stderr)
        return 1
    print(f"revoked {args.id}: its token no longer authenticates")
    return 0


def cmd_k8s(args: argparse.Namespace, settings: Settings) -> int:
    from creative_sync import manifests

    cluster = manifests.Cluster(image=args.image, kafka_cluster=args.kafka_cluster, bootstrap=args.bootstrap)
    for path in manifests.write(Path(args.out), cluster):
        print(f"wrote {path}")
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from creative_sync.bench import run_bench

    return run_bench(settings, args)


def cmd_conformance(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.app import operations_registry
    from gateway.conformance import conformance_table

    print(conformance_table(operations_registry()), end="")
    return 0


def cmd_sim_agents(args: argparse.Namespace, settings: Settings) -> int:
    from creative_sync.sim_agents import run_sim_agents

    # The token from the environment by preference: a command line is visible to every user in `ps`.
    return run_sim_agents(host=args.host, first_port=args.port, token=os.environ.get("CREATIVE_SYNC_SIM_TOKEN") or args.token)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Seed the demo into a running system (docker compose's one-shot seeder): a principal for the
    account on the cluster's principals topic, the simulated agents registered, the demo library
    and campaigns; waits for the gateway and the agents first."""
    from creative_sync.demo import seed
    from creative_sync.sim_agents import DEMO_AGENTS
    from creative_sync.up import wait_http
    from gateway import principals

    agent_token = os.environ.get("CREATIVE_SYNC_SIM_TOKEN")
    if not (settings.bootstrap_servers and agent_token):
        print("demo: KAFKA_BOOTSTRAP_SERVERS and CREATIVE_SYNC_SIM_TOKEN are needed", file=sys.stderr)
        return 2
    host, port = args.agents.rsplit(":", 1)
    urls = [f"{host}:{int(port) + i}/mcp" for i in range(len(DEMO_AGENTS))]
    for url, what in ((f"{args.gateway}/readyz", "the gateway"), (urls[-1], "the simulated agents")):
        if not wait_http(url, args.wait_s):
            print(f"demo: {what} did not answer within {args.wait_s:.0f} s ({url})", file=sys.stderr)
            return 1
    _, token = principals.add(settings.bootstrap_servers, settings.topic_prefix, "demo", [args.account])
    for line in seed(args.gateway, token, args.account, urls, agent_token):
        print(f"demo: {line}", flush=True)
    print(f"demo: token for account '{args.account}': {token}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creative-sync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    broker = sub.add_parser("broker", help="start the embedded Kafka-protocol broker (Tansu) and print its address")
    broker.add_argument("--port", type=int, default=0)
    broker.set_defaults(func=cmd_broker)
    topics = sub.add_parser("topics", help="the topic catalogue")
    topics.add_argument("action", choices=["create", "list"])
    topics.set_defaults(func=cmd_topics)
    sub.add_parser("worker", help="run a stream-processing worker").set_defaults(func=cmd_worker)
    sub.add_parser("gateway", help="run the HTTP gateway").set_defaults(func=cmd_gateway)
    sub.add_parser("up", help="broker (unless external) + topics + worker + gateway").set_defaults(func=cmd_up)
    principals = sub.add_parser("principals", help="API principals")
    principals_sub = principals.add_subparsers(dest="action", required=True)
    add = principals_sub.add_parser("add", help="create a principal and print its token")
    add.add_argument("--name", required=True)
    add.add_argument("--account", action="append", required=True, help="an account it may act for (repeatable)")
    listing = principals_sub.add_parser("list", help="the principals (ids, names, accounts; never tokens)")
    revoke = principals_sub.add_parser("revoke", help="revoke a principal: its token stops authenticating")
    revoke.add_argument("--id", required=True, help="the principal's id (p_...)")
    for command in (add, listing, revoke):
        command.add_argument("--file", default=None, help="a principals file instead of the cluster's topic "
                             "(the default without KAFKA_BOOTSTRAP_SERVERS: CREATIVE_SYNC_PRINCIPALS_FILE)")
        command.set_defaults(func=cmd_principals)
    secrets = sub.add_parser("secrets", help="the deployment's shared secrets (sealing key, webhook signing key)")
    secrets.add_argument("action", choices=["init", "rotate"])
    secrets.add_argument("--dir", required=True, help="the secrets directory (what CREATIVE_SYNC_SECRETS_DIR names)")
    secrets.add_argument("--sealing", action="store_true", help="rotate: a new sealing key")
    secrets.add_argument("--signing", action="store_true", help="rotate: a new webhook signing key")
    secrets.set_defaults(func=cmd_secrets)
    k8s = sub.add_parser("k8s", help="write the Kubernetes manifests (Strimzi topics from the catalogue, workloads, alerts)")
    k8s.add_argument("--out", default="k8s", help="the folder to write them to")
    k8s.add_argument("--image", default="creative-sync:latest")
    k8s.add_argument("--kafka-cluster", default="kafka", help="the Strimzi Kafka resource's name")
    k8s.add_argument("--bootstrap", default="kafka-kafka-bootstrap:9092", help="the Kafka bootstrap address in the cluster")
    k8s.set_defaults(func=cmd_k8s)
    sim = sub.add_parser("sim-agents", help="simulated AdCP sales agents on loopback (display, video, AdCP 3.1)")
    sim.add_argument("--port", type=int, default=9100, help="port of the first agent (the others follow)")
    sim.add_argument("--token", default=None, help="the bearer token they accept (better: CREATIVE_SYNC_SIM_TOKEN, "
                     "which `ps` does not show; default: a fresh one, printed)")
    sim.add_argument("--host", default="127.0.0.1", help="the address they listen on (0.0.0.0 in a container)")
    sim.set_defaults(func=cmd_sim_agents)
    demo = sub.add_parser("demo", help="seed the demo into a running system (a principal, the simulated agents, "
                          "creatives, campaigns); the agents' token from CREATIVE_SYNC_SIM_TOKEN")
    demo.add_argument("--gateway", required=True, help="the gateway's URL, e.g. http://gateway:8080")
    demo.add_argument("--agents", required=True, help="the first simulated agent's URL without path, e.g. "
                      "http://sim-agents:9100 (the others on the next ports)")
    demo.add_argument("--account", default="demo")
    demo.add_argument("--wait-s", type=float, default=300.0, help="how long to wait for the gateway and the agents")
    demo.set_defaults(func=cmd_demo)
    sub.add_parser("conformance", help="print the README's conformance table (operation x transport x AdCP "
                   "release), from the operation registry").set_defaults(func=cmd_conformance)
    bench = sub.add_parser("bench", help="measure the system against the raw broker in the same run")
    bench.add_argument("--events", type=int, default=20000, help="events for the throughput and hop-latency parts")
    bench.add_argument("--rejoins", type=int, default=3, help="kill -9 / restart rounds for the rejoin time")
    bench.add_argument("--requests", type=int, default=200, help="sync_creatives requests (100 creatives each) via the gateway")
    bench.add_argument("--concurrency", type=int, default=8, help="concurrent gateway clients")
    bench.add_argument("--agents", type=int, default=10, help="simulated sales agents for the sync part")
    bench.add_argument("--sync-creatives", type=int, default=2000,
                       help="creatives synced to every agent in the sync part (0: skip the sync part)")
    bench.add_argument("--update-rate", type=float, default=100.0, help="content updates offered per second (latency)")
    bench.add_argument("--updates", type=int, default=500, help="content updates for the latency figure")
    bench.add_argument("--scale", action="store_true",
                       help="also grow one account's library (see --scale-sizes) and measure gateway memory, list cost "
                            "per request and a gateway restart at each size")
    bench.add_argument("--scale-sizes", default="10000,100000", help="library sizes of the scale part (comma-separated)")
    bench.add_argument("--idle", action="store_true",
                       help="also measure an idle broker + worker + gateway (CPU per second) and the first request after")
    bench.add_argument("--idle-seconds", type=float, default=60.0, help="how long the idle part measures")
    bench.add_argument("--failover", action="store_true",
                       help="also kill -9 one of two workers mid-sync on a grown library (see --failover-library)")
    bench.add_argument("--failover-library", type=int, default=100_000, help="library size of the failover part")
    bench.add_argument("--failover-creatives", type=int, default=2000,
                       help="creatives synced to every agent in the failover part")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args, Settings.from_env()))


if __name__ == "__main__":
    main()
