"""The AdCP creative library through the real gateway and a real worker process on the real broker:
MCP driven by the official adcp client, REST by plain HTTP, every AdCP response schema-checked."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from adcp.validation import validate_response
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from creative_sync.samples import display_creative, sync_request, video_creative
from gateway.app import create_app
from gateway.auth import PrincipalStore
from tests.integration.conftest import module_deployment
from tests.support import message_count, produce, read_topic, topic_name
from topics.catalogue import Codecs
from topics.events import LibraryCommand, LibraryOperation, TaskStatus


def assert_adcp(tool: str, body: dict) -> dict:
    outcome = validate_response(tool, body)
    assert outcome.valid, f"{tool} response breaks the AdCP schema: {[(i.pointer, i.message) for i in outcome.issues]}"
    return body


class Gateway:
    def __init__(self, client: TestClient, tokens: dict[str, str], settings, accounts: tuple[str, str]) -> None:  # noqa: ANN001
        self.client, self.tokens, self.settings = client, tokens, settings
        self.a1, self.a2 = accounts  # the buyer's account, the other principal's

    @property
    def base_url(self) -> str:
        return str(self.client.make_url(""))

    async def call(self, operation: str, body: dict, *, as_: str = "buyer", status: int | None = None) -> dict:
        response = await self.client.post(f"/api/v1/{operation}", json=body,
                                          headers={"Authorization": f"Bearer {self.tokens[as_]}"})
        answer = await response.json()
        if status is not None:
            assert response.status == status, answer
        if response.status < 300:  # every AdCP answer is checked against its official schema
            assert_adcp(operation, answer)
        return answer


@pytest.fixture(scope="module")
def deployment(kafka_bootstrap, tmp_path_factory):
    yield from module_deployment(kafka_bootstrap, tmp_path_factory)


@pytest.fixture
async def gateway(deployment):
    """A gateway on the module's deployment, with two principals of accounts of this test's own."""
    settings, run = deployment.settings, uuid.uuid4().hex[:8]
    accounts = (f"acct-1-{run}", f"acct-2-{run}")
    store = PrincipalStore(settings.principals_file)
    tokens = {"buyer": store.add(f"buyer-{run}", [accounts[0]])[1], "other": store.add(f"other-{run}", [accounts[1]])[1]}
    # A generous budget: these tests expect completed answers, even on a loaded CI machine.
    client = TestClient(TestServer(create_app(settings.with_(request_budget_s=20), principals=store)))
    await client.start_server()
    yield Gateway(client, tokens, settings, accounts)
    await client.close()


async def test_sync_then_list_over_mcp_with_the_official_adcp_client(gateway):
    from adcp import ADCPClient
    from adcp.types import AgentConfig

    config = AgentConfig(id="creative-sync", agent_uri=f"{gateway.base_url}/mcp", protocol="mcp",
                         auth_token=gateway.tokens["buyer"], auth_type="bearer", auth_header="Authorization")
    async with ADCPClient(config) as client:
        tools = {tool if isinstance(tool, str) else tool.get("name") for tool in await client.list_tools()}
        assert {"sync_creatives", "list_creatives", "get_task_status", "get_adcp_capabilities",
                "list_creative_formats"} <= tools
        body = sync_request(gateway.a1, [display_creative("c1", tags=["holiday"]), video_creative("v1")])
        synced = await client.adapter.sync_creatives(body)
        assert synced.success, synced.error
        assert_adcp("sync_creatives", synced.data)
        assert sorted((c["creative_id"], c["action"]) for c in synced.data["creatives"]) == [("c1", "created"),
                                                                                              ("v1", "created")]
        listed = await client.adapter.list_creatives({"account": {"account_id": gateway.a1}})
        assert listed.success, listed.error
        assert_adcp("list_creatives", listed.data)
        assert {c["creative_id"] for c in listed.data["creatives"]} == {"c1", "v1"}  # read-your-writes
        # Errors reach the official client with their code and recovery (its adcp_error), not as raw text.
        refused = await client.adapter.list_creatives({"account": {"account_id": "someone-else"}})
        assert not refused.success and refused.adcp_error["code"] == "PERMISSION_DENIED"
        assert refused.adcp_error["recovery"] == "terminal"
        invalid = await client.adapter.list_creatives({"account": {"account_id": gateway.a1}, "sort": 3})
        assert invalid.adcp_error["code"] == "INVALID_REQUEST" and invalid.adcp_error["field"] == "sort"
        assert invalid.adcp_error["recovery"] == "correctable"


async def test_strict_refuses_the_whole_bad_batch_and_lenient_applies_the_good_ones(gateway):
    settings = gateway.settings
    before = await message_count(settings.bootstrap_servers, topic_name(settings, "library_commands"))
    bad = {**display_creative("broken"), "format_id": None, "format_kind": "hologram"}
    batch = [display_creative("good-1"), bad, display_creative("good-2")]
    strict = await gateway.call("sync_creatives", sync_request(gateway.a1, batch, validation_mode="strict"), status=400)
    assert strict["errors"] and all(e["field"].startswith("creatives[1]") for e in strict["errors"])
    assert await message_count(settings.bootstrap_servers, topic_name(settings, "library_commands")) == before

    lenient = assert_adcp("sync_creatives", await gateway.call(
        "sync_creatives", sync_request(gateway.a1, batch, validation_mode="lenient"), status=200))
    actions = {c["creative_id"]: c for c in lenient["creatives"]}
    assert actions["good-1"]["action"] == actions["good-2"]["action"] == "created"
    assert actions["broken"]["action"] == "failed" and actions["broken"]["errors"][0]["field"].startswith("creatives[1]")
    listed = await gateway.call("list_creatives", {"account": {"account_id": gateway.a1}}, status=200)
    assert {c["creative_id"] for c in listed["creatives"]} == {"good-1", "good-2"}


async def test_dry_run_reports_would_be_actions_and_publishes_nothing(gateway):
    settings = gateway.settings
    await gateway.call("sync_creatives", sync_request(gateway.a1, [display_creative("c1")]), status=200)
    before = await message_count(settings.bootstrap_servers, topic_name(settings, "library_commands"))
    rehearsal = assert_adcp("sync_creatives", await gateway.call("sync_creatives", sync_request(
        gateway.a1, [display_creative("c1", name="Renamed"), display_creative("c2")], dry_run=True), status=200))
    assert rehearsal["dry_run"] is True
    assert {c["creative_id"]: c["action"] for c in rehearsal["creatives"]} == {"c1": "updated", "c2": "created"}
    assert await message_count(settings.bootstrap_servers, topic_name(settings, "library_commands")) == before
    listed = await gateway.call("list_creatives", {"account": {"account_id": gateway.a1}}, status=200)
    assert [(c["creative_id"], c["name"]) for c in listed["creatives"]] == [("c1", "Banner c1")]


async def test_same_key_same_payload_replays_and_another_payload_conflicts(gateway):
    request = sync_request(gateway.a1, [display_creative("c1")], idempotency_key="replay-key-000000001")
    first = await gateway.call("sync_creatives", request, status=200)
    again = assert_adcp("sync_creatives", await gateway.call("sync_creatives", request, status=200))
    assert again["replayed"] is True and again["creatives"] == first["creatives"]
    changed = {**request, "creatives": [display_creative("c1", name="Other")]}
    conflict = await gateway.call("sync_creatives", changed, status=409)
    assert conflict["errors"][0]["code"] == "IDEMPOTENCY_CONFLICT"


async def test_patch_updates_only_the_given_fields_and_reports_content_vs_metadata(gateway):
    settings = gateway.settings
    await gateway.call("sync_creatives", sync_request(gateway.a1, [display_creative("c1", tags=["a"])]), status=200)
    patched = await gateway.call("sync_creatives", sync_request(
        gateway.a1, [{"creative_id": "c1", "tags": ["a", "b"]}], patch=True), status=200)
    assert patched["creatives"] == [{"creative_id": "c1", "action": "updated", "changes": ["tags"]}]
    listed = await gateway.call("list_creatives", {"account": {"account_id": gateway.a1}}, status=200)
    [creative] = listed["creatives"]
    assert creative["tags"] == ["a", "b"] and creative["assets"]["main"]["url"].endswith("c1.png")
    codecs = Codecs(prefix=settings.topic_prefix)
    mine = lambda found: [c for c in found if c.account_id == gateway.a1]  # noqa: E731
    changes = await read_topic(settings.bootstrap_servers, topic_name(settings, "creative_state"),
                               until=lambda r: len(mine(r)) >= 2, decode=lambda r: codecs.value("creative_state").decode(r.value))
    assert [c.change.value for c in sorted(mine(changes), key=lambda c: c.updated_at)] == ["CREATED", "METADATA"]


async def test_delete_missing_archives_the_rest_and_list_hides_archived_unless_asked(gateway):
    await gateway.call("sync_creatives", sync_request(gateway.a1, [display_creative("keep"), display_creative("old")]),
                       status=200)
    replaced = await gateway.call("sync_creatives", sync_request(gateway.a1, [display_creative("keep")],
                                                                 delete_missing=True), status=200)
    assert {c["creative_id"]: c["action"] for c in replaced["creatives"]} == {"keep": "unchanged", "old": "deleted"}
    visible = await gateway.call("list_creatives", {"account": {"account_id": gateway.a1}}, status=200)
    assert [c["creative_id"] for c in visible["creatives"]] == ["keep"]
    archived = await gateway.call("list_creatives", {"account": {"account_id": gateway.a1},
                                                     "filters": {"statuses": ["archived"]}}, status=200)
    assert [c["creative_id"] for c in archived["creatives"]] == ["old"]


async def test_assignments_are_reported_and_listed(gateway):
    answer = assert_adcp("sync_creatives", await gateway.call("sync_creatives", sync_request(
        gateway.a1, [display_creative("c1")], assignments=[{"creative_id": "c1", "package_id": "pkg-1"},
                                                          {"creative_id": "ghost", "package_id": "pkg-1"}]), status=200))
    by_id = {c["creative_id"]: c for c in answer["creatives"]}
    assert by_id["c1"]["assigned_to"] == ["pkg-1"] and "pkg-1" in by_id["ghost"]["assignment_errors"]
    listed = await gateway.call("list_creatives", {"account": {"account_id": gateway.a1}, "include_assignments": True},
                                status=200)
    [package] = listed["creatives"][0]["assignments"]["assigned_packages"]
    assert package["package_id"] == "pkg-1" and package["assigned_date"]


async def test_one_account_never_sees_another_accounts_creatives_or_tasks(gateway):
    await gateway.call("sync_creatives", sync_request(gateway.a1, [display_creative("secret")]), status=200)
    denied = await gateway.call("list_creatives", {"account": {"account_id": gateway.a1}}, as_="other", status=403)
    assert denied["errors"][0]["code"] == "PERMISSION_DENIED"
    own = await gateway.call("list_creatives", {"account": {"account_id": gateway.a2}}, as_="other", status=200)
    assert own["creatives"] == []


async def test_a_command_produced_straight_onto_the_input_topic_is_applied_and_answered(gateway):
    settings = gateway.settings
    codecs = Codecs(prefix=settings.topic_prefix)
    request = sync_request(gateway.a1, [display_creative("from-dam")])
    command = LibraryCommand(command_id="dam-0001", account_id=gateway.a1, principal_id="dam-connector",
                             operation=LibraryOperation.SYNC_CREATIVES, idempotency_key=request["idempotency_key"],
                             request_json=json.dumps(request), received_at=datetime.now(UTC))
    invalid = command.model_copy(update={"command_id": "dam-0002", "request_json": json.dumps({"creatives": "nope"})})
    key = codecs.key("library_commands").encode(gateway.a1)
    await produce(settings.bootstrap_servers, topic_name(settings, "library_commands"),
                  [(key, codecs.value("library_commands").encode(command)),
                   (key, codecs.value("library_commands").encode(invalid))])
    results = await read_topic(settings.bootstrap_servers, topic_name(settings, "task_results"),
                               until=lambda r: {"dam-0001", "dam-0002"} <= {x.task_id for x in r},
                               decode=lambda r: codecs.value("task_results").decode(r.value))
    by_id = {r.task_id: r for r in results}
    assert by_id["dam-0001"].status is TaskStatus.COMPLETED
    assert json.loads(by_id["dam-0001"].result_json)["creatives"] == [{"creative_id": "from-dam", "action": "created"}]
    assert by_id["dam-0002"].status is TaskStatus.FAILED
    letters = await read_topic(settings.bootstrap_servers, topic_name(settings, "dead_letters"), until=lambda r: len(r) >= 1,
                               decode=lambda r: codecs.value("dead_letters").decode(r.value))
    assert letters[0].error_type == "RequestRejected" and "account" in letters[0].error_message


async def test_a_request_outliving_the_budget_is_submitted_then_completes_with_signed_webhooks(topics_created, tmp_path):
    """Both signing modes, verified with the adcp library: HMAC-SHA256 when the registration gives
    `authentication`, RFC 9421 (key from the gateway's JWKS) when it does not."""
    from adcp.signing.jwks import StaticJwksResolver
    from adcp.signing.webhook_hmac import LegacyWebhookHmacOptions, verify_webhook_hmac
    from adcp.signing.webhook_verifier import WebhookVerifyOptions, verify_webhook_signature

    secret, jwks = "s" * 40, {}
    received: dict[str, dict] = {}

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if request.match_info["mode"] == "hmac":
            verify_webhook_hmac(headers=dict(request.headers), body=body, options=LegacyWebhookHmacOptions(
                secret=secret.encode(), sender_identity="creative-sync", now=datetime.now(UTC).timestamp()))
        else:
            verify_webhook_signature(method="POST", url=str(request.url), headers=dict(request.headers), body=body,
                                     options=WebhookVerifyOptions(jwks_resolver=StaticJwksResolver(jwks)))
        received[request.match_info["mode"]] = json.loads(body)
        return web.Response(status=204)

    hook_app = web.Application()
    hook_app.router.add_post("/hooks/{mode}", receive)
    hook = TestServer(hook_app)
    await hook.start_server()
    store = PrincipalStore(topics_created.principals_file)
    token = store.add("buyer", ["acct-1"])[1]
    settings = topics_created.with_(request_budget_s=0.3)
    client = TestClient(TestServer(create_app(settings, principals=store)))
    await client.start_server()
    headers = {"Authorization": f"Bearer {token}"}
    jwks.update(await (await client.get("/.well-known/jwks.json")).json())
    try:
        # No worker yet: the answer cannot come within the budget.
        configs = {"hmac": {"url": str(hook.make_url("/hooks/hmac")), "operation_id": "op-hmac",
                            "authentication": {"schemes": ["HMAC-SHA256"], "credentials": secret}},
                   "rfc9421": {"url": str(hook.make_url("/hooks/rfc9421")), "operation_id": "op-9421"}}
        tasks = {}
        for mode, config in configs.items():
            response = await client.post("/api/v1/sync_creatives", headers=headers, json=sync_request(
                "acct-1", [display_creative(f"late-{mode}")], push_notification_config=config))
            submitted = assert_adcp("sync_creatives", await response.json())
            assert response.status == 202 and submitted["status"] == "submitted"
            tasks[mode] = submitted["task_id"]
        status = await (await client.post("/api/v1/get_task_status", headers=headers,
                                          json={"task_id": tasks["hmac"]})).json()
        assert status["status"] == "working"

        from tests.support import WorkerProcess
        worker = WorkerProcess(settings, tmp_path / "late-worker.log").start()
        try:
            for _ in range(600):
                if len(received) == 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            worker.stop(grace_s=0)
        status = assert_adcp("get_task_status", await (await client.post(
            "/api/v1/get_task_status", headers=headers, json={"task_id": tasks["hmac"]})).json())
        assert status["status"] == "completed"
        assert status["result"]["creatives"] == [{"creative_id": "late-hmac", "action": "created"}]
        for mode, config in configs.items():
            webhook = received[mode]
            assert webhook["operation_id"] == config["operation_id"] and webhook["task_id"] == tasks[mode]
            assert webhook["status"] == "completed" and webhook["result"]["creatives"][0]["creative_id"] == f"late-{mode}"
    finally:
        await client.close()
        await hook.close()
