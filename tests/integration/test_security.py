"""One account can never touch another's data (issue 15), attacked the way a second account would:
every operation of the registry with the first account's ids, an agent id reused after removal
with a validly signed webhook, and two accounts racing for the same ids. Real gateway, real
worker, real broker, simulated sales agents on loopback."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from creative_sync.samples import display_creative, sync_request
from creative_sync.sim_agents import SimAgentConfig
from gateway import keys
from gateway.app import create_app
from gateway.auth import PrincipalStore
from gateway.webhooks import hmac_headers
from streams.library.requests import payload_hash, task_id_for
from tests.integration.conftest import module_deployment
from tests.integration.sales_agents import AGENT_TOKEN, Agents, eventually
from tests.support import message_count, read_all, topic_name
from topics.catalogue import all_specs
from topics.ids import scoped, webhook_path

A, B = "acct-1", "acct-2"
SECRET_NAMES = ("A-secret-creative-name", "A-secret-agent-name", "A-secret-brand-name", "A-secret-campaign-name",
                "A-secret-tactic-name")


class Caller:
    """One principal's view of the gateway: answers whatever the status (the attacks check it)."""

    def __init__(self, client: TestClient, token: str, account: str) -> None:
        self.client, self.token, self.account = client, token, account

    async def raw(self, operation: str, body: dict) -> tuple[int, dict]:
        response = await self.client.post(f"/api/v1/{operation}", json=body, headers={"Authorization": f"Bearer {self.token}"})
        return response.status, await response.json()

    async def call(self, operation: str, body: dict, status: int = 200) -> dict:
        got, answer = await self.raw(operation, {"account": {"account_id": self.account}, **body})
        assert got == status, (operation, answer)
        return answer


@pytest.fixture(scope="module")
def deployment(kafka_bootstrap, tmp_path_factory):
    yield from module_deployment(kafka_bootstrap, tmp_path_factory)


@pytest.fixture
async def accounts(deployment):
    """The gateway, with a principal for account A and one for account B."""
    settings = deployment.settings
    store = PrincipalStore(settings.principals_file)
    token_a, token_b = store.add("buyer A", [A])[1], store.add("buyer B", [B])[1]
    client = TestClient(TestServer(create_app(settings.with_(request_budget_s=20), principals=store),
                                   port=settings.gateway_port))
    await client.start_server()
    yield Caller(client, token_a, A), Caller(client, token_b, B)
    await client.close()


async def _approved(caller: Caller, creative_id: str, agent_id: str) -> dict | None:
    answer = await caller.call("get_creative_sync_status", {"creative_id": creative_id})
    rows = {r["sales_agent_id"]: r for r in answer["creatives"][0]["sales_agents"]}
    return rows if rows.get(agent_id, {}).get("approval_status") == "approved" else None


# -- the ownership attack, generated from the operation registry -----------------------------------
async def _account_a(a: Caller, agents: Agents, tag: str) -> dict[str, Any]:
    """Account A with one of everything; answers A's ids by the request property that names them."""
    await agents.add(SimAgentConfig(f"ag-{tag}", SECRET_NAMES[1], ("image",)))
    ids = {"creative_id": f"creative-{tag}", "sales_agent_id": f"ag-{tag}", "brand_agent_id": f"brand-{tag}",
           "campaign_id": f"campaign-{tag}", "tactic_id": f"tactic-{tag}"}
    request = sync_request(A, [display_creative(ids["creative_id"], name=SECRET_NAMES[0])], idempotency_key=f"own-{tag}-0000000000001")
    await a.call("sync_creatives", {k: v for k, v in request.items() if k != "account"})
    ids["task_id"] = task_id_for(A, request["idempotency_key"], payload_hash(request))
    await a.call("register_sales_agent", {"sales_agent_id": ids["sales_agent_id"], "name": SECRET_NAMES[1],
                                          "agent_url": agents.urls[ids["sales_agent_id"]],
                                          "auth": {"token": AGENT_TOKEN, "header": "Authorization"}})
    await a.call("create_brand_agent", {"brand_agent_id": ids["brand_agent_id"], "name": SECRET_NAMES[2]})
    await a.call("create_campaign", {"brand_agent_id": ids["brand_agent_id"], "campaign_id": ids["campaign_id"],
                                     "name": SECRET_NAMES[3]})
    await eventually(lambda: _discovered(a, ids["sales_agent_id"]), timeout=120, what="A's agent discovered")
    await a.call("create_tactic", {"campaign_id": ids["campaign_id"], "tactic_id": ids["tactic_id"], "name": SECRET_NAMES[4],
                                   "sales_agent_id": ids["sales_agent_id"]})
    assigned = await a.call("assign_creative", {"campaign_id": ids["campaign_id"], "creative_id": ids["creative_id"]})
    assert assigned["sync"]["queued"] == 1, assigned
    await eventually(lambda: _approved(a, ids["creative_id"], ids["sales_agent_id"]), timeout=120, what="A's creative approved")

    async def notified() -> list | None:
        return (await a.call("list_notifications", {}))["notifications"] or None
    ids["notification_id"] = (await eventually(notified, what="A's notifications"))[0]["notification_id"]
    return ids


async def _discovered(caller: Caller, agent_id: str) -> bool:
    listed = (await caller.call("list_sales_agents", {}))["sales_agents"]
    return any(a["sales_agent_id"] == agent_id and a["discovery"] == "done" for a in listed)


async def _snapshot(a: Caller, ids: dict[str, Any]) -> dict[str, Any]:
    """What of A's data an attack must leave as it is (notifications: the flags of those there are)."""
    creatives = (await a.call("list_creatives", {}))["creatives"]
    notes = (await a.call("list_notifications", {"pagination": {"max_results": 100}}))["notifications"]
    status = await a.call("get_creative_sync_status", {"creative_id": ids["creative_id"]})
    return {
        "creatives": sorted((c["creative_id"], c["name"], c["status"]) for c in creatives),
        "agents": sorted((x["sales_agent_id"], x["name"], x["agent_url"], x["has_auth_token"])
                         for x in (await a.call("list_sales_agents", {}))["sales_agents"]),
        "brands": sorted((x["brand_agent_id"], x["name"], x["status"]) for x in (await a.call("list_brand_agents", {}))["brand_agents"]),
        "campaigns": sorted((x["campaign_id"], x["name"], x["status"], x["creatives"], x["tactics"])
                            for x in (await a.call("list_campaigns", {}))["campaigns"]),
        "tactics": sorted((x["tactic_id"], x["name"], x["status"], x["sales_agent_id"])
                          for x in (await a.call("list_tactics", {"campaign_id": ids["campaign_id"]}))["tactics"]),
        "rows": sorted((r["sales_agent_id"], r["sync_status"], r["approval_status"])
                       for r in status["creatives"][0]["sales_agents"]),
        "notes": {n["notification_id"]: (n["read"], n["acknowledged"]) for n in notes},
    }


def _attack_arguments(schema: dict[str, Any], ids: dict[str, Any], account: str | None) -> dict[str, Any]:
    """An operation's arguments naming A's entities wherever the schema has a place for one, and
    filling what else it requires; generated, so a new operation is attacked without a new test."""
    by_name = {**ids, "creative_ids": [ids["creative_id"]], "sales_agent_ids": [ids["sales_agent_id"]],
               "notification_ids": [ids["notification_id"]]}
    arguments: dict[str, Any] = {} if account is None else {"account": {"account_id": account}}
    properties = schema.get("properties", {})
    for name in properties:
        if name in by_name:
            arguments[name] = by_name[name]
    if "creatives" in properties:  # a creative under A's id, in the caller's own library
        arguments["creatives"] = [display_creative(ids["creative_id"], name="B was here")]
    for name in schema.get("required", []):
        if name in arguments:
            continue
        kind = properties.get(name, {}).get("type")
        arguments[name] = {"name": "B was here", "agent_url": "http://127.0.0.1:9/mcp",
                           "idempotency_key": f"attack-{uuid.uuid4().hex}"}.get(name) or \
            {"string": "B was here", "array": [], "object": {}, "boolean": True, "integer": 1}.get(kind, "B was here")
    return arguments


async def test_a_second_account_can_neither_see_nor_change_anything_of_the_first_through_any_operation(accounts, deployment):
    a, b = accounts
    agents = Agents()
    try:
        ids = await _account_a(a, agents, "own")
        before = await _snapshot(a, ids)
        operations = list(a.client.server.app[keys.OPERATIONS])
        attacked = []
        for operation in operations:
            schema = operation.input_schema
            takes_account = "account" in schema.get("properties", {})
            # 1. B's principal acting for A's account: refused outright.
            if takes_account:
                status, answer = await b.raw(operation.name, _attack_arguments(schema, ids, A))
                assert status == 403 and answer["errors"][0]["code"] == "PERMISSION_DENIED", (operation.name, answer)
            # 2. B in its own account naming A's ids: refused, or an answer holding none of A's data.
            status, answer = await b.raw(operation.name, _attack_arguments(schema, ids, B if takes_account else None))
            assert status < 500, (operation.name, answer)
            text = json.dumps(answer)
            assert not any(secret in text for secret in SECRET_NAMES), (operation.name, answer)
            assert agents.urls[ids["sales_agent_id"]] not in text, (operation.name, answer)
            attacked.append((operation.name, status))
        assert len(attacked) == len(operations) >= 26, attacked
        # What B's own-account calls did (e.g. a creative of the same id in B's library) is B's.
        after = await _snapshot(a, ids)
        notes_before, notes_after = before.pop("notes"), after.pop("notes")
        assert after == before
        assert {n: notes_after.get(n) for n in notes_before} == notes_before  # the flags of A's notifications, as they were
        # A's news since the first snapshot (a campaign turning healthy): unread, unacknowledged, whatever B did
        assert all(flags == (False, False) for n, flags in notes_after.items() if n not in notes_before), notes_after
        refused = [name for name, status in attacked if status >= 400]
        print(f"\nownership: {len(operations)} operations attacked twice each (as A: all refused); as B with A's ids: "
              f"refused {refused}, the others answered with B's own or nothing, never A's")
    finally:
        await agents.close()


async def test_a_reused_agent_id_with_a_signed_webhook_cannot_touch_the_first_accounts_statuses(accounts, deployment):
    """Defect 1: A removes agent X; B registers X with its own webhook secret and posts a validly
    signed status change naming A's creative: refused, and A's row stays approved."""
    a, b = accounts
    agents = Agents()
    try:
        await agents.add(SimAgentConfig("reused", "Reused Id", ("image",)))
        await a.call("register_sales_agent", {"sales_agent_id": "reused", "name": "A's agent", "agent_url": agents.urls["reused"],
                                              "auth": {"token": AGENT_TOKEN, "header": "Authorization"}})
        await a.call("sync_creatives", {k: v for k, v in sync_request(A, [display_creative("reuse-creative")],
                                                                       idempotency_key="reuse-0000000001").items()
                                        if k != "account"})
        await eventually(lambda: _discovered(a, "reused"), timeout=120, what="discovery")
        await a.call("sync_creative_to_sales_agents", {"creative_id": "reuse-creative", "sales_agent_ids": ["reused"]})
        await eventually(lambda: _approved(a, "reuse-creative", "reused"), timeout=120, what="approved at A's agent")
        await a.call("remove_sales_agent", {"sales_agent_id": "reused"})

        secret = "b-webhook-secret-that-is-long-enough-0001"
        registered = await b.call("register_sales_agent", {"sales_agent_id": "reused", "name": "B's agent",
                                                           "agent_url": "http://127.0.0.1:9/mcp", "webhook_secret": secret})
        assert registered["sales_agent"]["webhook_url"] == webhook_path(scoped(B, "reused"))

        def status_changed(account: str, key: str, observed_at: str = "") -> bytes:
            return json.dumps({"idempotency_key": key, "notification_type": "creative.status_changed", "account_id": account,
                               "creative_id": "reuse-creative", "transition": {
                                   "from": "approved", "to": "rejected",
                                   "observed_at": observed_at or datetime.now(UTC).isoformat()},
                               "reason_detail": "B says no"}).encode()

        async def post(path: str, body: bytes) -> int:
            response = await b.client.post(path, data=body, headers={"Content-Type": "application/json",
                                                                      **hmac_headers(secret, body)})
            return response.status
        assert await post(webhook_path(scoped(B, "reused")), status_changed(A, "attack-1")) == 403  # names A's account
        assert await post(webhook_path(scoped(A, "reused")), status_changed(A, "attack-2")) == 404  # A's removed agent
        assert await post(webhook_path(scoped(B, "reused")), status_changed(B, "attack-3", "2099-01-01T00:00:00Z")) == 400
        # B's own account and A's creative id: accepted (B's agent may speak of B's creatives) and
        # applied to nothing: no creative of B's was ever synced to it.
        assert await post(webhook_path(scoped(B, "reused")), status_changed(B, "attack-4")) == 200
        # A's own decisions still land (the pipeline is alive), and nothing of B's did.
        await a.call("register_sales_agent", {"sales_agent_id": "reused-2", "name": "A again", "agent_url": agents.urls["reused"],
                                              "auth": {"token": AGENT_TOKEN, "header": "Authorization"}})
        await eventually(lambda: _discovered(a, "reused-2"), timeout=120, what="discovery")
        await a.call("sync_creative_to_sales_agents", {"creative_id": "reuse-creative", "sales_agent_ids": ["reused-2"]})
        rows = await eventually(lambda: _approved(a, "reuse-creative", "reused-2"), timeout=120, what="approved again")
        assert rows["reused"]["approval_status"] == "approved" and rows["reused"]["reason"] is None
        b_rows = await b.raw("get_creative_sync_status", {"account": {"account_id": B}, "creative_id": "reuse-creative"})
        assert b_rows[0] == 404
    finally:
        await agents.close()


async def test_two_accounts_racing_for_the_same_ids_each_get_their_own_and_one_account_never_gets_two(accounts):
    a, b = accounts
    for round_ in range(20):
        brand, campaign, agent = f"race-brand-{round_}", f"race-campaign-{round_}", f"race-agent-{round_}"
        answers = await asyncio.gather(*(caller.raw(op, {"account": {"account_id": caller.account}, **body}) for caller in (a, b)
                                         for op, body in [("create_brand_agent", {"brand_agent_id": brand, "name": f"{caller.account} brand"}),
                                                          ("register_sales_agent", {"sales_agent_id": agent, "name": f"{caller.account} agent",
                                                                                    "agent_url": "http://127.0.0.1:9/mcp"})]))
        assert [status for status, _ in answers] == [200, 200, 200, 200], answers
        created = await asyncio.gather(*(caller.raw("create_campaign", {"account": {"account_id": caller.account}, "brand_agent_id": brand,
                                                                        "campaign_id": campaign, "name": f"{caller.account} campaign"})
                                         for caller in (a, b, a)))  # A twice: one of A's two must lose
        assert sorted(status for status, _ in created) == [200, 200, 409], created
        assert created[1][0] == 200  # B's never loses to A's
    for caller in (a, b):
        campaigns = [c for c in (await caller.call("list_campaigns", {}))["campaigns"] if c["campaign_id"].startswith("race-")]
        assert sorted(c["campaign_id"] for c in campaigns) == sorted(f"race-campaign-{i}" for i in range(20))
        assert {c["name"] for c in campaigns} == {f"{caller.account} campaign"}
        names = {x["name"] for x in (await caller.call("list_sales_agents", {}))["sales_agents"] if x["sales_agent_id"].startswith("race-")}
        assert names == {f"{caller.account} agent"}
        brands = {x["name"] for x in (await caller.call("list_brand_agents", {}))["brand_agents"] if x["brand_agent_id"].startswith("race-")}
        assert brands == {f"{caller.account} brand"}


# -- outbound URLs ---------------------------------------------------------------------------------
async def test_loopback_and_internal_targets_are_refused_without_the_development_allowance(deployment):
    """SSRF: with the allowance off (the default outside `make up` and tests) the gateway refuses
    agents and webhooks on its own API, the worker's metrics, cloud metadata, file: and gopher:.
    (Only loopback targets here; private ranges are the validator's unit tests, no traffic.)"""
    settings = deployment.settings.with_(allow_private_targets=False)
    store = PrincipalStore(settings.principals_file)
    token = store.add("buyer A strict", [A])[1]
    client = TestClient(TestServer(create_app(settings, principals=store), port=settings.gateway_port))
    await client.start_server()
    a = Caller(client, token, A)
    try:
        internal = [f"http://127.0.0.1:{settings.gateway_port}/api/v1/list_creatives", f"http://localhost:{settings.worker_port}/metrics",
                    f"http://[::1]:{settings.gateway_port}/mcp", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd",
                    f"gopher://127.0.0.1:{settings.worker_port}/_GET", "http://0.0.0.0:8080/"]
        for url in internal:
            answer = await a.call("register_sales_agent", {"name": "Internal", "agent_url": url}, status=400)
            assert answer["errors"][0]["field"] == "agent_url" and "not an allowed target" in answer["errors"][0]["message"], url
        await a.call("register_sales_agent", {"sales_agent_id": "outside", "name": "Outside",
                                              "agent_url": "https://agent.example.com/mcp"})
        for url in internal[:2]:
            answer = await a.call("update_sales_agent", {"sales_agent_id": "outside", "agent_url": url}, status=400)
            assert answer["errors"][0]["field"] == "agent_url"
        commands = await message_count(settings.bootstrap_servers, topic_name(settings, "library_commands"))
        for url in internal:
            request = sync_request(A, [display_creative("hooked")], idempotency_key=f"ssrf-{uuid.uuid4().hex}")
            request["push_notification_config"] = {"url": url, "authentication": {"schemes": ["Bearer"], "credentials": "x" * 32}}
            status, answer = await a.raw("sync_creatives", request)
            assert status == 400 and answer["errors"][0]["field"].startswith("push_notification_config"), (url, answer)
        assert await message_count(settings.bootstrap_servers, topic_name(settings, "library_commands")) == commands
    finally:
        await client.close()


# -- limits and honest answers ---------------------------------------------------------------------
async def test_a_four_mebibyte_request_is_applied_and_one_byte_more_is_a_413(accounts, deployment):
    a, _ = accounts
    limit = deployment.settings.max_body_bytes

    def request_of(size: int, key: str) -> bytes:
        creatives = [display_creative(f"big-{i}") for i in range(100)]
        request = sync_request(A, creatives, idempotency_key=key)
        base = len(json.dumps(request).encode())
        padding = (size - base) // 100 - len(json.dumps({"snippet": {"asset_type": "html", "content": ""}})) - 2
        for creative in creatives:
            creative["assets"]["snippet"] = {"asset_type": "html", "content": "<p>" + "x" * (padding - 7) + "</p>"}
        body = json.dumps(request).encode()
        return body + b" " * (size - len(body))  # exactly `size` bytes

    headers = {"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"}
    body = request_of(limit, "four-mebibytes-0001")
    assert len(body) == limit
    response = await a.client.post("/api/v1/sync_creatives", data=body, headers=headers)
    answer = await response.json()
    assert response.status in (200, 202), answer
    task_id = answer.get("task_id") or task_id_for(A, "four-mebibytes-0001", payload_hash(json.loads(body)))

    async def done() -> dict | None:
        status = await a.call("get_task_status", {"task_id": task_id})
        return status if status["status"] == "completed" else None
    result = (await eventually(done, timeout=120, what="the 4 MiB request applied"))["result"]
    assert [c["action"] for c in result["creatives"]] == ["created"] * 100
    listed = await a.call("list_creatives", {"filters": {"creative_ids": ["big-0", "big-99"]}})
    assert sorted(c["creative_id"] for c in listed["creatives"]) == ["big-0", "big-99"]

    too_big = await a.client.post("/api/v1/sync_creatives", data=request_of(limit + 1, "four-mebibytes-0002"), headers=headers)
    refused = await too_big.json()
    assert too_big.status == 413 and refused["errors"][0]["recovery"] == "correctable", refused


async def test_a_publish_the_broker_does_not_confirm_in_time_is_submitted_and_applied_once(accounts):
    """Defect 6: a publish that timed out may have landed; the answer says `submitted` with the
    task, never "nothing was applied", and the retry with the same key applies it at most once."""
    a, _ = accounts
    link = a.client.server.app[keys.BROKER]
    request = {k: v for k, v in sync_request(A, [display_creative("unconfirmed")], idempotency_key="unconfirmed-00001").items()
               if k != "account"}
    normal, link.send_timeout_s = link.send_timeout_s, 1e-9
    try:
        status, answer = await a.raw("sync_creatives", {"account": {"account_id": A}, **request})
    finally:
        link.send_timeout_s = normal
    assert status == 202 and answer["status"] == "submitted" and "Nothing was applied" not in json.dumps(answer), answer
    assert answer["task_id"] == task_id_for(A, "unconfirmed-00001", payload_hash({"account": {"account_id": A}, **request}))
    retried = await a.call("sync_creatives", request)  # the same request again, as the answer advises
    assert retried.get("status") != "submitted" or retried["task_id"] == answer["task_id"]
    listed = await a.call("list_creatives", {"filters": {"creative_ids": ["unconfirmed"]}})
    assert [(c["creative_id"], c.get("version", 1)) for c in listed["creatives"]] == [("unconfirmed", 1)]


async def test_no_secret_reaches_a_topic_a_log_or_the_metrics(accounts, deployment, caplog):
    """Defect 7: agents' tokens, headers and webhook secrets are sealed; buyers' webhook
    credentials stay with the gateway; none of them, nor a principal's token, is anywhere else."""
    caplog.set_level(logging.DEBUG)
    a, _ = accounts
    mark = uuid.uuid4().hex
    secrets = {"agent token": f"agent-token-{mark}", "tenant header": f"tenant-{mark}",
               "webhook secret": f"webhook-secret-{mark}-long-enough", "buyer credentials": f"buyer-credentials-{mark}-long",
               "principal token": a.token}
    await a.call("register_sales_agent", {"sales_agent_id": "sealed", "name": "Sealed", "agent_url": "http://127.0.0.1:9/mcp",
                                          "auth": {"token": secrets["agent token"]}, "headers": {"x-tenant": secrets["tenant header"]},
                                          "webhook_secret": secrets["webhook secret"]})
    request = {k: v for k, v in sync_request(A, [display_creative("sealed-creative")], idempotency_key=f"sealed-{mark}").items()
               if k != "account"}
    request["push_notification_config"] = {"url": "https://buyer.example/hooks/1",
                                           "authentication": {"schemes": ["HMAC-SHA256"], "credentials": secrets["buyer credentials"]}}
    await a.call("sync_creatives", request)

    async def failed_discovery() -> bool:  # the worker has opened the credentials and used them
        listed = (await a.call("list_sales_agents", {}))["sales_agents"]
        return any(x["sales_agent_id"] == "sealed" and x["discovery"] == "failed" for x in listed)
    await eventually(failed_discovery, timeout=120, what="the worker tried the sealed agent")
    settings = deployment.settings
    everything = b""
    for spec in all_specs(settings.app_id):
        records = await read_all(settings.bootstrap_servers, spec.full_name(settings.topic_prefix))
        everything += b"".join((r.key or b"") + (r.value or b"") for r in records)
    assert b"sealed-creative" in everything  # (the topics were read)
    metrics = await (await a.client.get("/metrics")).text()
    texts = {"topics": everything.decode("latin-1"), "worker log": Path(deployment.log_path).read_text(),
             "gateway log": caplog.text, "metrics": metrics}
    for where, text in texts.items():
        for name, secret in secrets.items():
            assert secret not in text, f"the {name} is in the {where}"
