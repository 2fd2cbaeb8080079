"""The sync engine against sales agents as they exist in the field (tests.field_agents: the
official adcp server framework, none of our code), through the public API only: register →
discovered → sync → approved or rejected in get_creative_sync_status. Each agent has the quirks
real agents were seen with (issue 14)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from creative_sync.broker import free_port
from creative_sync.samples import display_creative, sync_request, video_creative
from tests.field_agents.agent import FieldAgentConfig
from tests.integration.conftest import gateway_for, module_deployment
from tests.integration.field import (ACCOUNT, FieldProcess, agent_view, approved, discovered, reference_creative, register,
                                     settled)
from tests.integration.sales_agents import eventually, image_kind_creative

TENANT = "tenant-7f3a"

# Every quirk of the reference salesagent at once: a 3.3 MB tool list, MCP only at /mcp/, formats
# listed with a trailing-slash agent_url and no kind, `major_versions: [3]` only, no status in its
# sync answers, list filters ignored, idempotency keys dropped, a required tenant header.
QUIRKY = FieldAgentConfig(name="Reference Sales Agent", tools_list_bytes=3_300_000, tenant_header="x-adcp-tenant",
                          tenant=TENANT, review_after_s=0.5)
KINDLESS = FieldAgentConfig(name="Kindless Portal", format_agent_url="https://ads.kindless.example/",
                            format_ids=("display_300x250", "video_30s"), major_only=False, supported_versions=("3.1",))
EARLY = FieldAgentConfig(name="Early Bird", format_ids=("display_300x250_image",))
BEHIND = FieldAgentConfig(name="Clock Behind", clock_skew_s=-300, status_in_answers=True)
AHEAD = FieldAgentConfig(name="Clock Ahead", clock_skew_s=300, status_in_answers=True)
PUSHING = FieldAgentConfig(name="Pushing Agent", webhooks=True, review_after_s=None, major_only=False,
                           supported_versions=("3.0", "3.1"))
FORGETFUL = FieldAgentConfig(name="Forgetful Agent", lose_answers=1, existing_is_error=True)
TARGET = FieldAgentConfig(name="New Home")
CONFIGS = [QUIRKY, KINDLESS, EARLY, BEHIND, AHEAD, PUSHING, FORGETFUL, TARGET]


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """One process serving the field agents of this module (the adcp server framework takes ~20 s
    of CPU to import: once, not per agent)."""
    process = FieldProcess(CONFIGS, tmp_path_factory.mktemp("field") / "agents.log").start()
    yield process
    process.kill()


@pytest.fixture(scope="module")
def shared_worker(kafka_bootstrap, tmp_path_factory):
    yield from module_deployment(kafka_bootstrap, tmp_path_factory)


@pytest.fixture
async def api(shared_worker):
    """The gateway of acct-1's principal, in front of the module's worker."""
    served = await gateway_for(shared_worker.settings)
    yield served
    await served.client.close()


def index(config: FieldAgentConfig) -> int:
    return CONFIGS.index(config)


def base_url(field: FieldProcess, config: FieldAgentConfig) -> str:
    return field.url(index(config), "")


async def test_the_reference_agents_quirks_all_at_once(api, field):
    """Behaviours 1-4, 6-9 and 16: discovery through a 3.3 MB tool list at /mcp/ only, with a tenant
    header; 30 slash-less creatives reach the slashed formats it lists; kind-only creatives go out
    under an id it lists or are skipped with a reason; approvals come by polling a list that
    ignores its filters; a rejection is visible with its reason."""
    registered = await register(api, "reference", QUIRKY, base_url(field, QUIRKY), headers={"x-adcp-tenant": TENANT})
    assert registered["sales_agent"]["extra_headers"] == ["x-adcp-tenant"] and TENANT not in str(registered)
    await register(api, "kindless", KINDLESS, field.url(index(KINDLESS)))
    view = await discovered(api, "reference")
    assert view["endpoint_url"] == field.url(index(QUIRKY)) and view["endpoint_url"].endswith("/mcp/")  # the path that answered
    assert (view["negotiated_version"], view["adcp_versions"]) == ("3.0", ["3.0"])
    assert "only major version 3" in view["version_reason"]
    assert view["live"]["state"] == "ok" and TENANT not in str(await api.call("list_sales_agents", ACCOUNT))
    assert [f["id"] for f in view["discovered_formats"]] == ["display_300x250_image", "display_728x90_image"]

    slashless = [reference_creative(f"ref-{n:02d}", name="reject me" if n == 7 else None) for n in range(30)]
    kind_only = [image_kind_creative(f"wide-{n}", 728, 90) for n in range(3)] + \
        [image_kind_creative(f"tall-{n}", 160, 600) for n in range(2)]
    await api.call("sync_creatives", sync_request("acct-1", slashless + kind_only))
    ids = [c["creative_id"] for c in slashless + kind_only]
    answer = await api.call("sync_creative_to_sales_agents", {**ACCOUNT, "creative_ids": ids, "sales_agent_ids": ["reference"]})
    assert all(c["queued"] and not c["skipped"] for c in answer["creatives"])  # slash-less ids match slashed ones

    placed = [i for i in ids if not i.startswith(("tall-", "ref-07"))]
    await settled(api, placed, "reference", approved, "approval of every placed creative by polling", timeout=180)
    rows = await settled(api, ["ref-07"], "reference", lambda r: r and r["approval_status"] == "rejected", "the rejection")
    assert rows["ref-07"]["reference"]["reason"] == "Brand safety: not accepted here"
    rows = await settled(api, ["tall-0", "tall-1"], "reference", lambda r: r and r["sync_status"] == "skipped",
                         "kind-only creatives it lists no format for: skipped")
    assert rows["tall-0"]["reference"]["reason"] == "The agent lists no image 160x600 format (it is sent only formats it lists)"

    state = await field.state(index(QUIRKY))
    sent = {(r["format_id"] or {}).get("agent_url") for r in state["received"]}, {(r["format_id"] or {}).get("id") for r in state["received"]}
    assert sent == ({"https://creative.adcontextprotocol.org/"}, {"display_300x250_image", "display_728x90_image"})  # only ids it listed, as listed
    assert not any(r["format_kind"] for r in state["received"])  # a 3.0 payload: no format_kind
    assert {r["creative_id"] for r in state["received"]} == set(placed) | {"ref-07"}
    assert state["calls"]["list_creatives"] >= 1

    # A format listed without kind: images and videos both recognised (by its definition or the
    # reference agent's well-known ids), delivered under the ids it lists.
    await api.call("sync_creatives", sync_request("acct-1", [image_kind_creative("square", 300, 250), video_creative("clip")]))
    answer = await api.call("sync_creative_to_sales_agents", {**ACCOUNT, "creative_ids": ["square", "clip"],
                                                              "sales_agent_ids": ["kindless"]})
    assert all(c["queued"] for c in answer["creatives"]), answer
    await settled(api, ["square", "clip"], "kindless", approved, "image and video at the kindless agent")
    received = {r["creative_id"]: r["format_id"] for r in (await field.state(index(KINDLESS)))["received"]}
    assert received == {"square": {"agent_url": "https://ads.kindless.example/", "id": "display_300x250"},
                        "clip": {"agent_url": "https://ads.kindless.example/", "id": "video_30s"}}


async def test_a_sync_requested_in_the_same_second_as_the_registration_is_delivered(api, field):
    """Behaviour 11: the job waits for discovery (awaiting_discovery), then is matched and delivered."""
    await api.call("sync_creatives", sync_request("acct-1", [reference_creative("early")]))
    await register(api, "early", EARLY, field.url(index(EARLY)))
    answer = await api.call("sync_creative_to_sales_agents", {**ACCOUNT, "creative_id": "early", "sales_agent_ids": ["early"]})
    assert answer["queued"] == [{"sales_agent_id": "early", "name": "Early Bird", "state": "awaiting_discovery"}]
    await settled(api, ["early"], "early", approved, "the early creative delivered and approved")
    assert [r["creative_id"] for r in (await field.state(index(EARLY)))["received"]] == ["early"]


async def test_an_agent_clock_five_minutes_off_still_approves_a_resynced_creative(api, field):
    """Behaviour 5: approvals stamped by a clock 5 min behind or ahead are applied after a re-sync."""
    await register(api, "behind", BEHIND, field.url(index(BEHIND)))
    await register(api, "ahead", AHEAD, field.url(index(AHEAD)))
    await discovered(api, "behind")
    await discovered(api, "ahead")
    await api.call("sync_creatives", sync_request("acct-1", [reference_creative("skewed")]))
    await api.call("sync_creative_to_sales_agents", {**ACCOUNT, "creative_id": "skewed", "sales_agent_ids": ["behind", "ahead"]})
    for agent_id in ("behind", "ahead"):
        await settled(api, ["skewed"], agent_id, approved, f"first approval at {agent_id}")
    updated = reference_creative("skewed")
    updated["assets"]["main"]["url"] = "https://cdn.example.com/skewed-v2.png"  # a content change: re-synced
    await api.call("sync_creatives", sync_request("acct-1", [updated]))
    for agent_id in ("behind", "ahead"):
        rows = await settled(api, ["skewed"], agent_id, lambda r: approved(r) and r["content_version_synced"] == 2,
                             f"version 2 approved at {agent_id}")
        assert rows["skewed"][agent_id]["attempts"] >= 2


async def test_an_agent_that_pushes_gets_our_webhook_and_its_decision_arrives_by_it(api, field):
    """Behaviour 10: push_notification_config sent where the agent declares webhook support; its
    signed creative.status_changed reaches the status long before the slow safety-net poll (60 s)."""
    await register(api, "pushing", PUSHING, field.url(index(PUSHING)))
    assert (await discovered(api, "pushing"))["accepts_webhooks"] is True
    await api.call("sync_creatives", sync_request("acct-1", [reference_creative("pushed")]))
    await api.call("sync_creative_to_sales_agents", {**ACCOUNT, "creative_id": "pushed", "sales_agent_ids": ["pushing"]})
    await settled(api, ["pushed"], "pushing", lambda r: r and r["sync_status"] == "synced", "delivery to the pushing agent")
    await field.decide("acct-1", "pushed", "approved", index=index(PUSHING))
    await settled(api, ["pushed"], "pushing", approved, "the pushed approval", timeout=30)
    state = await field.state(index(PUSHING))
    assert state["calls"].get("webhook_200") == 1


async def test_a_batch_whose_answer_was_lost_is_retried_safely_at_an_agent_that_drops_idempotency(api, field):
    """Behaviour 7: the first call lands but its answer is lost; the retry is the same batch under the
    same key, and the agent's "already exists" for it means synced, not failed."""
    await register(api, "forgetful", FORGETFUL, field.url(index(FORGETFUL)))
    await discovered(api, "forgetful")
    creatives = [reference_creative(f"lost-{n}") for n in range(3)]
    await api.call("sync_creatives", sync_request("acct-1", creatives))
    await api.call("sync_creative_to_sales_agents", {**ACCOUNT, "creative_ids": [c["creative_id"] for c in creatives],
                                                     "sales_agent_ids": ["forgetful"]})
    rows = await settled(api, [c["creative_id"] for c in creatives], "forgetful", approved, "approval after the retry")
    assert all(rows[c["creative_id"]]["forgetful"]["attempts"] == 2 for c in creatives)
    received = (await field.state(index(FORGETFUL)))["received"]
    assert len(received) == 6 and len({r["idempotency_key"] for r in received}) == 1  # one batch, one key, twice


async def test_an_update_wins_over_discovery_and_an_unreachable_agent_fails_visibly(api, field, shared_worker):
    """Behaviours 12 and 14: an agent at a closed port is `failed` with the error within a minute, its
    job shows failed with the reason, one notification and one log line; an update to a live
    address wins over the failing discovery, resets its backoff and is delivered at once."""
    closed = f"http://127.0.0.1:{free_port()}/mcp"
    await register(api, "moving", TARGET, closed)
    await api.call("sync_creatives", sync_request("acct-1", [reference_creative("moved")]))
    await api.call("sync_creative_to_sales_agents", {**ACCOUNT, "creative_id": "moved", "sales_agent_ids": ["moving"]})

    async def failed() -> dict | None:
        view = await agent_view(api, "moving")
        return view if view["discovery"] == "failed" else None
    view = await eventually(failed, timeout=60, what="discovery failed")
    assert view["available"] is False and view["discovery_error"] and view["live"]["state"] == "unreachable"
    rows = await settled(api, ["moved"], "moving", lambda r: r and r["sync_status"] == "failed", "the job shows failed")
    assert "cannot be reached" in rows["moved"]["moving"]["reason"]
    await asyncio.sleep(10)  # two more attempts with backoff (4 s, 8 s): still one line, one notification
    log = Path(shared_worker.log_path).read_text()
    assert log.count("discovery of sales agent acct-1~moving failed") == 1, log[-3000:]
    notifications = await api.call("list_notifications", {**ACCOUNT, "types": ["sales_agent.unavailable"]})
    # Other agents of this module share the account (one worker per module); only this agent's count matters.
    mine = [n for n in notifications["notifications"] if n["references"]["sales_agent_id"] == "moving"]
    assert len(mine) == 1, notifications["notifications"]

    await api.call("update_sales_agent", {**ACCOUNT, "sales_agent_id": "moving", "agent_url": field.url(index(TARGET))})
    view = await discovered(api, "moving", timeout=30)  # not after the backoff (16 s and more by now)
    assert view["agent_url"] == field.url(index(TARGET)) and view["available"]
    await settled(api, ["moved"], "moving", approved, "delivered at the new address")
    await asyncio.sleep(2)
    assert (await agent_view(api, "moving"))["agent_url"] == field.url(index(TARGET))  # not reverted by a write-back


async def test_another_account_can_neither_see_nor_change_an_agents_headers_or_address(gateway_api, topics_created):
    """Ownership of what this issue added (extra headers, endpoint, live state): a second account's
    principal lists nothing of acct-1's agent and cannot update or remove it."""
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.app import create_app
    from gateway.auth import PrincipalStore
    from tests.integration.sales_agents import Api

    api = gateway_api
    await register(api, "tenanted", QUIRKY, "https://agent.example.com/", headers={"x-adcp-tenant": TENANT})
    store = PrincipalStore(topics_created.principals_file)
    client = TestClient(TestServer(create_app(topics_created, principals=store)))
    await client.start_server()
    rival, theirs = Api(client, store.add("rival", ["acct-2"])[1]), {"account": {"account_id": "acct-2"}}
    try:
        assert (await rival.call("list_sales_agents", theirs))["sales_agents"] == []
        for operation, extra in (("update_sales_agent", {"headers": {"x-adcp-tenant": "theirs"},
                                                         "agent_url": "https://rival.example.com/mcp"}),
                                 ("remove_sales_agent", {})):
            refused = await rival.call(operation, {**theirs, "sales_agent_id": "tenanted", **extra}, status=404)
            assert refused["errors"][0]["code"] == "REFERENCE_NOT_FOUND"
        await rival.call("list_sales_agents", ACCOUNT, status=403)
        for bad, field in (({"Authorization": "Bearer x"}, "headers"), ({"x-tenant": "a\r\nHost: evil"}, "headers.x-tenant")):
            refused = await api.call("update_sales_agent", {**ACCOUNT, "sales_agent_id": "tenanted", "headers": bad}, status=400)
            assert (refused["errors"][0]["code"], refused["errors"][0]["field"]) == ("INVALID_REQUEST", field)
        view = await agent_view(api, "tenanted")
        assert (view["agent_url"], view["extra_headers"]) == ("https://agent.example.com/", ["x-adcp-tenant"])
    finally:
        await client.close()
