"""Reads from the owners (interactive queries): two workers and two gateways on one broker; a read on
either gateway (the library, the creatives' status, the campaigns, the notifications) is answered
by the worker that owns the account, with the same data, while a rebalance moves partitions (a
worker joins, then another leaves). (The order of pages on a RocksDB
owner after a restart: tests/integration/test_worker_restart.py; cursors over a changing library:
tests/unit/test_library_index.py.)"""
from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient, TestServer

from creative_sync.processes import WorkerProcess
from creative_sync.samples import display_creative, sync_request
from creative_sync.broker import free_port
from gateway.app import create_app
from gateway.auth import PrincipalStore
from gateway import keys
from tests.support import produce, topic_name
from topics.catalogue import Codecs
from topics.events import Notification, Urgency

ACCOUNTS = [f"acct-{n}" for n in range(6)]  # spread over the partitions of both workers
PER_ACCOUNT = 25
ASSIGNED, NOTES = 5, 12


async def call(client: TestClient, headers: dict, operation: str, body: dict) -> dict:
    response = await client.post(f"/api/v1/{operation}", json=body, headers=headers)
    answer = await response.json()
    assert response.status == 200, answer
    return answer


async def campaigns_and_notes(client: TestClient, headers: dict, account: str) -> tuple[list, list[str]]:
    """The account's campaigns (name, creatives) and its notifications, page by page (5 a page)."""
    found = await call(client, headers, "list_campaigns", {"account": {"account_id": account}})
    campaigns = [(c["name"], c["creatives"], c["notifications"]["unread"]) for c in found["campaigns"]]
    notes, cursor = [], None
    while True:
        page = await call(client, headers, "list_notifications", {
            "account": {"account_id": account}, "pagination": {"max_results": 5, **({"cursor": cursor} if cursor else {})}})
        notes += [n["notification_id"] for n in page["notifications"]]
        if not page["pagination"]["has_more"]:
            return campaigns, notes
        cursor = page["pagination"]["cursor"]


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
        codecs, now = Codecs(prefix=topics_created.topic_prefix), datetime.now(UTC)
        for account in ACCOUNTS:  # a campaign (on gateway a), and notifications (as the status processor publishes them)
            scope = {"account": {"account_id": account}}
            brand = (await call(a, headers, "create_brand_agent", {**scope, "name": "Acme"}))["brand_agent"]
            await call(a, headers, "create_campaign", {**scope, "brand_agent_id": brand["brand_agent_id"],
                                                       "campaign_id": "holiday", "name": f"Holiday {account}"})
            await call(a, headers, "assign_creative", {**scope, "campaign_id": "holiday",
                                                       "creative_ids": expected[account][:ASSIGNED]})
            notes = [Notification(notification_id=f"{account}-n{i:02}", account_id=account, type="creative.approved",
                                  urgency=Urgency.LOW, message="approved", creative_id=expected[account][i],
                                  created_at=now - timedelta(seconds=i)) for i in range(NOTES)]
            await produce(topics_created.bootstrap_servers, topic_name(topics_created, "notifications"),
                          [(codecs.key("notifications").encode(account), codecs.value("notifications").encode(n)) for n in notes])
        expected_notes = {account: [f"{account}-n{i:02}" for i in range(NOTES)] for account in ACCOUNTS}

        async def notes_arrived() -> None:
            deadline = time.monotonic() + 120
            for account in ACCOUNTS:
                while (await campaigns_and_notes(a, headers, account))[1] != expected_notes[account]:
                    assert time.monotonic() < deadline, "the notifications never reached their owner"
                    await asyncio.sleep(0.2)
        await notes_arrived()

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
                    # campaigns and notifications live with the account's owners too (creatives 0-4 of the
                    # campaign have a notification each: unread)
                    assert await campaigns_and_notes(client, headers, account) == (
                        [(f"Holiday {account}", ASSIGNED, ASSIGNED)], expected_notes[account])

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

