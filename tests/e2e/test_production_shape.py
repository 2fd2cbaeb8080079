"""The deployment as the manifests make it (issue 19): two workers and two gateways, each process
with a data directory of its own, sharing only the broker and one secrets directory made by
`creative-sync secrets init`. A principal created once with the CLI against the cluster works on
both gateways (for its account only); both publish the same JWKS; sales agents registered through
one gateway are delivered to by whichever worker owns them, with creatives synced through the other."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aiohttp
import pytest

from creative_sync.bench_failover import agents_by_owner
from creative_sync.broker import free_port
from creative_sync.processes import GatewayProcess, WorkerProcess
from creative_sync.samples import display_creative, sync_request
from creative_sync.settings import SIGNING_KEY
from creative_sync.sim_agents import SimAgentConfig
from gateway.webhooks import Rfc9421Signer
from tests.integration.sales_agents import Agents, Api, Unsettled, eventually, register
from topics.catalogue import Codecs


def cli(settings, *args: str) -> str:  # noqa: ANN001
    done = subprocess.run([sys.executable, "-m", "creative_sync", *args], env={**os.environ, **settings.to_env()},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.rocksdb
async def test_two_workers_and_two_gateways_share_only_the_broker_and_the_secrets(topics_created, tmp_path):
    base = topics_created
    secrets_dir = tmp_path / "secrets"
    assert "created" in cli(base, "secrets", "init", "--dir", str(secrets_dir))

    def own(name: str, **more):  # noqa: ANN202 - a process's settings: its own data dir, the shared secrets
        return base.with_(data_dir=tmp_path / name, principals_file=tmp_path / name / "principals.json",
                          secrets_dir=secrets_dir, **more)
    workers = [WorkerProcess(own(f"worker-{n}", worker_port=free_port()), tmp_path / f"worker-{n}.log").start() for n in (1, 2)]
    seeds = tuple(w.settings.worker_url for w in workers)
    gateways = [GatewayProcess(own(f"gateway-{n}", gateway_port=free_port(), worker_urls=seeds), tmp_path / f"gateway-{n}.log")
                for n in ("a", "b")]
    agents = Agents()
    sessions: list[aiohttp.ClientSession] = []
    try:
        for gateway in gateways:
            await asyncio.to_thread(gateway.start, 120)
        for worker in workers:
            await asyncio.to_thread(worker.wait_assigned, 120)
        printed = cli(base, "principals", "add", "--name", "buyer", "--account", "acct-1")  # once, on the cluster
        token = next(line.split(": ", 1)[1] for line in printed.splitlines() if line.startswith("token: "))
        sessions = [aiohttp.ClientSession(base_url=g.base_url) for g in gateways]
        one, other = (Api(session, token) for session in sessions)

        async def accepted(api: Api) -> bool:
            response = await api.client.post("/api/v1/list_creatives", json={"account": {"account_id": "acct-1"}},
                                             headers={"Authorization": f"Bearer {token}"})
            return response.status == 200
        for api in (one, other):
            await eventually(lambda api=api: accepted(api), timeout=60, what="the CLI's principal accepted by the gateway")
        refused = await other.client.post("/api/v1/list_creatives", json={"account": {"account_id": "acct-2"}},
                                          headers={"Authorization": f"Bearer {token}"})
        assert refused.status == 403  # another account's library

        jwks = []
        for session in sessions:
            async with session.get("/.well-known/jwks.json") as response:
                jwks.append(await response.json())
        shared_key = Rfc9421Signer.from_bundle((secrets_dir / SIGNING_KEY).read_bytes())
        assert jwks[0] == jwks[1] == {"keys": [shared_key.public_jwk]}
        assert not any((tmp_path / name / "secrets.key").exists() for name in ("worker-1", "worker-2", "gateway-a", "gateway-b"))

        async def split() -> dict[int, str] | None:  # both workers own delivery queues
            owners = await asyncio.to_thread(workers[1].owners_of, "sync_jobs")
            return owners if set(owners.values()) == set(seeds) and len(owners) == 8 else None
        owners = await eventually(split, timeout=120, what="the delivery queues split between the two workers")
        ids = agents_by_owner(owners, Codecs(prefix=base.topic_prefix).partition_of("sync_jobs"), "acct-1", 1, prefix="prod")
        for agent_id in (ids[seeds[0]][0], ids[seeds[1]][0]):
            await agents.add(SimAgentConfig(agent_id, agent_id, ("image",)))
            await register(one, agents, agent_id, agent_id)  # registered through one gateway (sealed secrets)...

        creative_ids = [f"prod-c{i}" for i in range(5)]
        await other.call("sync_creatives", sync_request("acct-1", [display_creative(c) for c in creative_ids]))

        async def delivered() -> bool:  # ...synced through the other; discovery first, then the manual trigger
            answer = await other.call("sync_creative_to_sales_agents", {"account": {"account_id": "acct-1"},
                                                                         "creative_ids": creative_ids})
            return all(len(c["queued"]) == 2 for c in answer["creatives"])
        await eventually(delivered, timeout=180, what="both agents discovered and the creatives queued")
        await eventually(lambda: asyncio.sleep(0, all(len({r[1] for r in s.received}) == 5 for s in agents.sims.values())),
                         timeout=120, what="every creative at both agents")
        for worker, url in zip(workers, seeds):  # each agent's deliveries came from the worker that owns it
            owned, foreign = ids[url][0], next(a for u, [a] in ids.items() if u != url)

            async def counted(worker=worker, owned=owned) -> list[str] | Unsettled:  # noqa: ANN001
                # The worker counts a delivery once the agent's answer is in and its results are
                # published: a moment after the agent has the creatives.
                lines = [line for line in (await asyncio.to_thread(worker.metrics)).splitlines()
                         if line.startswith("creative_sync_sync_deliveries_total{")]
                return lines if any(owned in line and float(line.rsplit(" ", 1)[1]) >= 5 for line in lines) else Unsettled(lines)
            lines = await eventually(counted, timeout=60, what=f"{owned}'s deliveries counted by the worker that owns it")
            assert not any(foreign in line for line in lines), lines
    finally:
        for session in sessions:
            await session.close()
        await agents.close()
        for process in (*gateways, *workers):
            process.stop(grace_s=0)
