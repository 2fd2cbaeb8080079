"""The sync engine end to end: real gateway, real worker process, real broker, and simulated
sales agents that are real AdCP servers on loopback, called with the official adcp client.

One deployment (topics, worker) for the module; each test is an account of its own."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from creative_sync.samples import display_creative, sync_request, video_creative
from creative_sync.sim_agents import Behaviour, SimAgentConfig
from gateway.webhooks import Rfc9421Signer, hmac_headers
from tests.integration.sales_agents import (
    AGENT_TOKEN,
    Api,
    eventually,
    image_kind_creative,
    register,
)
from tests.integration.conftest import gateway_for, module_deployment
from tests.support import read_topic, topic_name
from topics.catalogue import Codecs
from topics.ids import public, scoped, webhook_path

OUTAGE_S = 15  # how long the dead agent is down, and each call of the hanging one takes


@pytest.fixture(scope="module")
def deployment(kafka_bootstrap, tmp_path_factory):
    # Backoffs of seconds rather than the deployed 15 s cool-down and 10 s retry cap: what is tested
    # is that they end, not how long they are (tests/unit/test_sync_logic.py has those).
    yield from module_deployment(kafka_bootstrap, tmp_path_factory, sync_breaker_cool_down_s=4.0, sync_retry_cap_s=3.0)


@pytest.fixture
def settings(deployment):
    return deployment.settings


@pytest.fixture
async def api(deployment):
    served = await gateway_for(deployment.settings, f"acct-{uuid.uuid4().hex[:8]}")
    yield served
    await served.client.close()


async def test_an_a2a_agent_is_discovered_and_receives_creatives(api, agents):
    a2a = await agents.add_a2a(SimAgentConfig("a2a", "A2A Publisher", ("image",), versions=("3.0", "3.1")))
    await register(api, agents, "a2a", "A2A Publisher", protocol="a2a")

    async def discovered() -> dict | None:
        listed = await api.call("list_sales_agents", {"account": {"account_id": api.account}})
        return listed if listed["sales_agents"][0]["discovery"] == "done" else None
    listed = await eventually(discovered, timeout=120, what="discovery over A2A")
    assert listed["sales_agents"][0]["negotiated_version"] == "3.1" and listed["sales_agents"][0]["protocol"] == "a2a"
    await api.call("sync_creatives", sync_request(api.account, [image_kind_creative("banner", 300, 250)]))
    await api.call("sync_creative_to_sales_agents", {"account": {"account_id": api.account}, "creative_id": "banner"})
    rows = await eventually(lambda: _approval(api, "banner", "a2a", "approved"), what="banner approved over A2A")
    assert rows["a2a"]["sync_status"] == "synced"
    assert a2a.creatives[(api.account, "banner")].creative["format_id"]["id"] == "display_300x250"  # the 3.1 dialect


@pytest.mark.rocksdb  # the deployed store: table rows written and read through RocksDB, not a dict
async def test_creatives_reach_compatible_agents_and_their_reviews_come_back(api, agents, settings):
    display = await agents.add(SimAgentConfig("display", "Daily News", ("image", "html5")))
    video = await agents.add(SimAgentConfig("video", "StreamCo", ("video_hosted",),
                                            behaviour=Behaviour(review="delayed", review_delay_s=1.0)))
    legacy = await agents.add(SimAgentConfig("legacy", "Old Portal", ("image",), versions=("3.0", "3.1"),
                                             behaviour=Behaviour(min_width=300)))
    registered = await register(api, agents, "display", "Daily News")
    assert registered["sales_agent"]["has_auth_token"] and AGENT_TOKEN not in str(registered)  # never echoed
    await register(api, agents, "video", "StreamCo")
    await register(api, agents, "legacy", "Old Portal")

    async def discovered() -> bool:
        listed = await api.call("list_sales_agents", {"account": {"account_id": api.account}})
        return all(a["discovery"] == "done" and a["available"] for a in listed["sales_agents"]) and listed
    listed = await eventually(discovered, timeout=120, what="discovery of the three agents")
    by_id = {a["sales_agent_id"]: a for a in listed["sales_agents"]}
    assert by_id["legacy"]["negotiated_version"] == "3.1" and by_id["display"]["negotiated_version"] == "3.2"
    assert AGENT_TOKEN not in str(listed)

    await api.call("sync_creatives", sync_request(api.account, [
        image_kind_creative("banner", 300, 250), video_creative("clip"), image_kind_creative("skyscraper", 160, 600)]))

    # Manual sync to every compatible agent: video is skipped, with a reason a person can act on.
    queued = await api.call("sync_creative_to_sales_agents", {"account": {"account_id": api.account}, "creative_id": "banner"})
    assert sorted(q["sales_agent_id"] for q in queued["queued"]) == ["display", "legacy"]
    assert [(s["sales_agent_id"], s["reason"]) for s in queued["skipped"]] == [
        ("video", "Display format not supported by video agent StreamCo")]

    async def banner_approved() -> dict | None:
        rows = await api.status_of("banner")
        done = all(rows.get(a, {}).get("approval_status") == "approved" for a in ("display", "legacy"))
        return rows if done and rows.get("video", {}).get("sync_status") == "skipped" else None
    rows = await eventually(banner_approved, what="banner approved by display and legacy")
    assert rows["video"]["reason"] == "Display format not supported by video agent StreamCo"
    assert rows["display"]["sync_status"] == "synced" and rows["display"]["content_version_synced"] == 1

    # The 3.1-only agent got the legacy dialect: format_id instead of format_kind, and succeeded.
    stored = legacy.creatives[(api.account, "banner")].creative
    assert "format_kind" not in stored and stored["format_id"]["id"] == "display_300x250"
    assert "format_kind" in display.creatives[(api.account, "banner")].creative
    # One MCP session for the capabilities, one in the version chosen for the formats and every
    # delivery after them: not a new one once the registry shows that version (there were three).
    assert {name: agents.mcp_sessions[name].opened for name in ("display", "legacy")} == {"display": 2, "legacy": 2}

    # Review by polling: the video agent approves after a delay; list_creatives tells us.
    await api.call("sync_creative_to_sales_agents", {"account": {"account_id": api.account}, "creative_id": "clip",
                                                     "sales_agent_ids": ["video"]})
    assert (await eventually(lambda: _approval(api, "clip", "video", "approved"), what="clip approved by polling"))
    assert len(video.received) == 1

    # A rejection by rule comes back with its reason.
    await api.call("sync_creative_to_sales_agents", {"account": {"account_id": api.account}, "creative_id": "skyscraper",
                                                     "sales_agent_ids": ["legacy"]})
    rows = await eventually(lambda: _approval(api, "skyscraper", "legacy", "rejected"), what="skyscraper rejected")
    assert rows["legacy"]["reason"] == "Image width 160px is below the 300px minimum"

    # A content change re-syncs where the creative is synced (display, legacy), not where it was
    # skipped (video); a metadata change re-syncs nowhere.
    received = {name: len(sim.received) for name, sim in agents.sims.items()}
    await api.call("sync_creatives", sync_request(api.account, [
        {**image_kind_creative("banner", 300, 250), "assets": {"main": {
            "asset_type": "image", "url": "https://cdn.example.com/banner-v2.png", "width": 300, "height": 250}}}]))

    async def resynced() -> dict | None:
        rows = await api.status_of("banner")
        return rows if all(rows[a]["content_version_synced"] == 2 for a in ("display", "legacy")) else None
    await eventually(resynced, what="banner v2 synced to display and legacy")
    assert display.creatives[(api.account, "banner")].creative["assets"]["main"]["url"].endswith("banner-v2.png")
    assert {name: len(sim.received) - received[name] for name, sim in agents.sims.items()} == \
        {"display": 1, "video": 0, "legacy": 1}

    received = {name: len(sim.received) for name, sim in agents.sims.items()}
    await api.call("sync_creatives", sync_request(api.account, [{"creative_id": "banner", "name": "Renamed"}], patch=True))
    await asyncio.sleep(3)  # what a re-sync would take (the content one above took well under that)
    assert {name: len(sim.received) for name, sim in agents.sims.items()} == received

    # The rows are on the documented status topic, for dashboards.
    codec = Codecs(prefix=settings.topic_prefix).value("sync_status")
    wanted = {("banner", "display"), ("banner", "legacy"), ("banner", "video"), ("clip", "video"), ("skyscraper", "legacy")}
    await read_topic(settings.bootstrap_servers, topic_name(settings, "sync_status"), decode=lambda r: codec.decode(r.value),
                     until=lambda states: {(s.creative_id, public(r.sales_agent_id)) for s in states
                                          if s.account_id == api.account for r in s.rows} >= wanted)


async def _approval(api: Api, creative_id: str, agent_id: str, approval: str) -> dict | None:
    rows = await api.status_of(creative_id)
    return rows if rows.get(agent_id, {}).get("approval_status") == approval else None


WEBHOOK_SECRET = "a-webhook-secret-of-at-least-32-characters"


async def test_webhook_approvals_are_verified_deduplicated_and_reach_the_status(api, agents, settings):
    hooked = await agents.add(SimAgentConfig("hooked", "Pushy Publisher", ("image",),
                                             behaviour=Behaviour(review="delayed", review_delay_s=1.0)))
    await register(api, agents, "hooked", "Pushy Publisher", webhook_secret=WEBHOOK_SECRET)
    url = str(api.client.make_url(webhook_path(scoped(api.account, "hooked"))))
    hooked.notify = (url, WEBHOOK_SECRET)
    await api.call("sync_creatives", sync_request(api.account, [display_creative("banner")]))

    async def discovered() -> bool:
        listed = await api.call("list_sales_agents", {"account": {"account_id": api.account}})
        return listed["sales_agents"][0]["discovery"] == "done"
    await eventually(discovered, timeout=120, what="discovery")
    await api.call("sync_creative_to_sales_agents", {"account": {"account_id": api.account}, "creative_id": "banner"})
    await eventually(lambda: _approval(api, "banner", "hooked", "approved"), what="approval by webhook")
    codec = Codecs(prefix=settings.topic_prefix).value("approval_events")
    webhook_events = lambda found: [(e.status, e.rejection_reason) for e in found  # noqa: E731
                                    if e.source.value == "WEBHOOK" and e.account_id == api.account]
    events = await read_topic(settings.bootstrap_servers, topic_name(settings, "approval_events"),
                              decode=lambda r: codec.decode(r.value), until=lambda found: len(webhook_events(found)) >= 1)
    assert webhook_events(events) == [("approved", None)]  # (a polling safety net may add POLL events)

    # Forged, unsigned, stale, replayed and conflicting fires: refused, and nothing published.
    body = json.dumps({"idempotency_key": "fire-0001", "notification_id": "n1", "notification_type": "creative.status_changed",
                       "fired_at": "2026-11-22T00:00:00Z", "subscriber_id": "s", "account_id": api.account,
                       "creative_id": "banner", "transition": {"from": "approved", "to": "rejected",
                                                              "observed_at": datetime.now(UTC).isoformat()},
                       "reason_code": "policy_revocation", "reason_detail": "Revoked", "initiator": "seller"}).encode()

    async def post(data: bytes, headers: dict) -> int:
        response = await api.client.post(webhook_path(scoped(api.account, "hooked")), data=data,
                                         headers={"Content-Type": "application/json", **headers})
        return response.status
    assert await post(body, hmac_headers("a-forged-secret-that-is-long-enough-too", body)) == 401
    assert await post(body, {}) == 401
    assert await post(body, hmac_headers(WEBHOOK_SECRET, body, timestamp=int(time.time()) - 3600)) == 401
    assert await post(b"{not json", hmac_headers(WEBHOOK_SECRET, b"{not json")) == 400
    unknown = await api.client.post("/webhooks/sales-agents/nobody", data=body, headers=hmac_headers(WEBHOOK_SECRET, body))
    assert unknown.status == 404
    signed = hmac_headers(WEBHOOK_SECRET, body)
    assert await post(body, signed) == 200  # the one genuine fire: the revocation
    assert await post(body, signed) == 200  # its retry: accepted, not published again
    changed = body.replace(b"Revoked", b"Changed")
    assert await post(changed, hmac_headers(WEBHOOK_SECRET, changed)) == 409
    rows = await eventually(lambda: _approval(api, "banner", "hooked", "rejected"), what="the revocation")
    assert rows["hooked"]["reason"] == "Revoked"
    await asyncio.sleep(1)
    events = await read_topic(settings.bootstrap_servers, topic_name(settings, "approval_events"),
                              decode=lambda r: codec.decode(r.value), until=lambda found: len(webhook_events(found)) >= 2)
    assert webhook_events(events) == [("approved", None), ("rejected", "Revoked")]  # each genuine fire once


async def test_rfc9421_signed_webhooks_are_verified_against_the_agents_registered_keys(api, agents, settings):
    signer = Rfc9421Signer()
    await agents.add(SimAgentConfig("signed", "Signing Publisher", ("image",)))
    await register(api, agents, "signed", "Signing Publisher", webhook_jwks={"keys": [signer.public_jwk]})
    url = str(api.client.make_url(webhook_path(scoped(api.account, "signed"))))
    body = json.dumps({"idempotency_key": "fire-9421", "notification_id": "n9", "notification_type": "creative.status_changed",
                       "fired_at": "2026-11-22T00:00:00Z", "subscriber_id": "s", "account_id": api.account,
                       "creative_id": "whatever", "transition": {"from": "pending_review", "to": "approved"},
                       "reason_code": "review_passed", "initiator": "seller"}).encode()
    headers = {"Content-Type": "application/json", **await signer.headers(url, body)}
    tampered = body.replace(b"approved", b"rejected")
    assert (await api.client.post(webhook_path(scoped(api.account, "signed")), data=tampered, headers=headers)).status == 401
    assert (await api.client.post(webhook_path(scoped(api.account, "signed")), data=body, headers=headers)).status == 200
    other = Rfc9421Signer(key_id=signer.key_id)  # same key id, another key: a forgery
    forged = {"Content-Type": "application/json", **await other.headers(url, body)}
    assert (await api.client.post(webhook_path(scoped(api.account, "signed")), data=body, headers=forged)).status == 401


async def test_a_dead_agent_catches_up_and_a_hanging_one_slows_nobody(api, agents, settings):
    fast = await agents.add(SimAgentConfig("fast", "Fast Daily", ("image",)))
    slow = await agents.add(SimAgentConfig("slow", "Slow Weekly", ("image",)))
    dead = await agents.add(SimAgentConfig("dead", "Dead Monthly", ("image",)))
    for sim in (fast, slow, dead):
        await register(api, agents, sim.config.agent_id, sim.config.name)

    async def discovered() -> bool:
        listed = await api.call("list_sales_agents", {"account": {"account_id": api.account}})
        return len(listed["sales_agents"]) == 3 and all(a["discovery"] == "done" for a in listed["sales_agents"])
    await eventually(discovered, timeout=120, what="discovery")
    ids = [f"c{i}" for i in range(10)]
    await api.call("sync_creatives", sync_request(api.account, [display_creative(c) for c in ids]))

    slow.config = replace(slow.config, behaviour=Behaviour(latency_s=OUTAGE_S))  # hangs on every call
    dead.config = replace(dead.config, behaviour=Behaviour(down=True))  # every call a 503
    outage = time.monotonic()
    for creative_id in ids:
        await api.call("sync_creative_to_sales_agents", {"account": {"account_id": api.account}, "creative_id": creative_id})

    async def all_synced(agent_id: str) -> bool:
        for creative_id in ids:
            row = (await api.status_of(creative_id)).get(agent_id, {})
            if row.get("sync_status") != "synced":
                return False
        return True
    await eventually(lambda: all_synced("fast"), timeout=15, what="every creative at the fast agent despite the others")
    assert time.monotonic() - outage < 15
    assert not await all_synced("slow") and not await all_synced("dead")

    async def failures_recorded() -> dict | None:
        rows = await api.status_of("c0")
        return rows if rows["dead"]["sync_status"] == "failed" and rows["dead"]["reason"] else None
    rows = await eventually(failures_recorded, timeout=20, what="the dead agent's failures in the status")
    assert rows["dead"]["attempts"] >= 1

    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage)))  # the outage lasts its length
    dead.config = replace(dead.config, behaviour=Behaviour())
    slow.config = replace(slow.config, behaviour=Behaviour())
    await eventually(lambda: all_synced("dead"), timeout=90, what="everything at the dead agent once it is back")
    await eventually(lambda: all_synced("slow"), timeout=90, what="everything at the slow agent")
    assert {c for _, c, _ in dead.received} == set(ids)

    # The failures are on the sync results topic, for notifications.
    codec = Codecs(prefix=settings.topic_prefix).value("sync_results")
    groups = await read_topic(settings.bootstrap_servers, topic_name(settings, "sync_results"),
                              decode=lambda r: codec.decode(r.value),
                              until=lambda found: any(public(r.sales_agent_id) == "dead" and r.outcome.value == "FAILED"
                                                      and r.account_id == api.account for g in found for r in g.results))
    failed = [r for g in groups for r in g.results
              if public(r.sales_agent_id) == "dead" and r.outcome.value == "FAILED" and r.account_id == api.account]
    assert failed and all(r.errors and r.errors[0].recovery == "transient" for r in failed)
