"""Reads from the owners (interactive queries): two workers and two gateways on one broker; a read on
either gateway is answered by the worker that owns the account, with the same data, while a
rebalance moves partitions (a worker joins, then another leaves). (The order of pages on a RocksDB
owner after a restart: tests/integration/test_worker_restart.py; cursors over a changing library:
tests/unit/test_library_index.py.)"""
from __future__ import annotations

import asyncio
import time

from aiohttp.test_utils import TestClient, TestServer

from creative_sync.processes import WorkerProcess
from creative_sync.samples import display_creative, sync_request
from creative_sync.broker import free_port
from gateway.app import create_app
from gateway.auth import PrincipalStore
from gateway import keys

ACCOUNTS = [f"acct-{n}" for n in range(6)]  # spread over the partitions of both workers
PER_ACCOUNT = 25


async def read_all(client: TestClient, headers: dict, account: str) -> list[str]:
    """Every creative of the account, page by page (4 pages of 7)."""
    ids, cursor = [], None
    while True:
        body = {"account": {"account_id": account}, "pagination": {"max_results": 7, **({"cursor": cursor} if cursor else {})},
                "sort": {"field": "name", "direction": "asc"}}
        response = await client.post("/api/v1/list_creatives", json=body, headers=headers)
        answer = await response.json()
        assert response.status == 200, answer
        assert answer["query_summary"]["total_matching"] == PER_ACCOUNT
        ids += [c["creative_id"] for c in answer["creatives"]]
        if not answer["pagination"]["has_more"]:
            return ids
        cursor = answer["pagination"]["cursor"]


def owners(worker: WorkerProcess) -> dict[str, str]:
    """Which worker owns each partition of the library commands, as that worker says."""
    import json
    import urllib.request

    from topics.credentials import OWNER_QUERIES, SecretBox

    token = SecretBox.from_file(worker.settings.secrets_key_path).token(OWNER_QUERIES)
    request = urllib.request.Request(f"http://{worker.settings.worker_host}:{worker.settings.worker_port}/owners/routing",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        routing = json.loads(answer.read())
    return routing["topics"].get(f"{worker.settings.topic_prefix}creative-sync.library.commands", {})


async def test_two_gateways_read_the_same_library_from_its_owners_while_partitions_move(topics_created, tmp_path):
    first = topics_created.with_(worker_port=free_port())
    second = topics_created.with_(worker_port=free_port())
    seeds = (f"http://127.0.0.1:{first.worker_port}", f"http://127.0.0.1:{second.worker_port}")
    store = PrincipalStore(topics_created.principals_file)
    token = store.add("agency", ACCOUNTS)[1]
    headers = {"Authorization": f"Bearer {token}"}
    one = WorkerProcess(first, tmp_path / "worker-1.log").start()
    two = None
    clients = []
    try:
        await asyncio.to_thread(one.wait_assigned)
        for seed_order in (seeds, seeds[::-1]):  # each gateway first asks a different worker
            app = create_app(topics_created.with_(worker_urls=seed_order, request_budget_s=20, read_deadline_s=30),
                             principals=store)
            clients.append(TestClient(TestServer(app)))
            await clients[-1].start_server()
        a, b = clients
        for account in ACCOUNTS:
            creatives = [display_creative(f"{account}-c{i:02}", name=f"creative {i:02}") for i in range(PER_ACCOUNT)]
            response = await a.post("/api/v1/sync_creatives", json=sync_request(account, creatives), headers=headers)
            assert response.status == 200, await response.text()
        expected = {account: [f"{account}-c{i:02}" for i in range(PER_ACCOUNT)] for account in ACCOUNTS}

        async def both_read_everything() -> None:
            for account in ACCOUNTS:  # read-your-writes on the other gateway too: the owner answers
                assert await read_all(a, headers, account) == expected[account]
                assert await read_all(b, headers, account) == expected[account]
                for client in clients:  # the status rows live with the creatives' partitions (none synced yet)
                    status = await client.post("/api/v1/get_creative_sync_status", headers=headers, json={
                        "account": {"account_id": account}, "creative_ids": expected[account][:3]})
                    answer = await status.json()
                    assert status.status == 200, answer
                    assert [c["content_version"] for c in answer["creatives"]] == [1, 1, 1]

        await both_read_everything()
        assert set(owners(one).values()) == {seeds[0]}
        for token in ("", "Bearer guessed"):  # the owner queries answer our processes only
            response = await a.session.post(f"{seeds[0]}/owners/library/page", headers={"Authorization": token},
                                            json={"accounts": ["acct-0"], "query": {}})
            assert response.status == 401

        # A second worker joins: partitions move to it while both gateways keep reading.
        two = WorkerProcess(second, tmp_path / "worker-2.log").start()
        deadline = time.monotonic() + 120
        while set(owners(one).values()) != set(seeds):
            assert time.monotonic() < deadline, f"the second worker never got partitions: {two.log_tail()}"
            await both_read_everything()
        await both_read_everything()
        for client in clients:
            assert client.server.app[keys.METRICS].routing_refreshes._value.get() >= 2  # learnt the move

        # The first worker leaves: the second owns everything, recovered from the changelogs.
        one.stop(grace_s=20)
        deadline = time.monotonic() + 120
        while set(owners(two).values()) != {seeds[1]}:
            assert time.monotonic() < deadline, f"the second worker never took over: {two.log_tail()}"
            await both_read_everything()
        await both_read_everything()
    finally:
        for client in clients:
            await client.close()
        one.stop(grace_s=0)
        if two is not None:
            two.stop(grace_s=0)

