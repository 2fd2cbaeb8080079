"""The product brief's "Holiday Campaign" end to end, through the real gateway, worker and broker
and five simulated sales agents: two tactics whose agents fail make it a warning; a rejection
that leaves a tactic with no approved creative is a high-urgency notification and a health change;
once the failures are fixed, it is healthy. Health records and notifications are read back from
their topics: types, counts, and no duplicates."""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from creative_sync.samples import sync_request, video_creative
from creative_sync.sim_agents import Behaviour, SimAgentConfig
from gateway.app import create_app
from gateway.auth import PrincipalStore
from gateway.webhooks import hmac_headers
from tests.integration.sales_agents import status_webhook, Api, eventually, image_kind_creative, register
from tests.support import read_topic, topic_name
from topics.catalogue import Codecs
from topics.ids import public, scoped, webhook_path

ACCOUNT = {"account_id": "acct-1"}
SECRET = "the-mobile-agents-webhook-secret-0123456789"


@pytest.fixture
def settings(settings):  # noqa: F811 - the default settings, with quick retries and a quick heartbeat
    return settings.with_(sync_retry_cap_s=1.0, sync_breaker_cool_down_s=2.0, health_heartbeat_s=5.0)


async def test_holiday_campaign_warning_rejection_and_recovery(api, agents, settings, ready_worker):
    display = [("news", "Daily News"), ("metro", "Metro Daily")]
    failing = [("sports", "Sports Hub"), ("weather", "Weather Now")]
    for agent_id, name in display + failing:
        await agents.add(SimAgentConfig(agent_id, name, ("image",), behaviour=Behaviour(down=(agent_id, name) in failing)))
        await register(api, agents, agent_id, name, formats=["image"])
    mobile = await agents.add(SimAgentConfig("mobile", "Mobile Video", ("video_hosted",)))
    await register(api, agents, "mobile", "Mobile Video", formats=["video_hosted"], webhook_secret=SECRET)

    images = [f"holiday-{i:02d}" for i in range(11)]
    await api.call("sync_creatives", sync_request("acct-1", [image_kind_creative(c, 300, 250) for c in images]
                                                  + [video_creative("holiday-video")]))
    brand = (await api.call("create_brand_agent", {"account": ACCOUNT, "name": "Acme Outdoor"}))["brand_agent"]
    await api.call("create_campaign", {"account": ACCOUNT, "brand_agent_id": brand["brand_agent_id"],
                                       "campaign_id": "holiday", "name": "Holiday Campaign"})
    for agent_id, name in [*display, ("mobile", "Mobile Video")]:
        await api.call("create_tactic", {"account": ACCOUNT, "campaign_id": "holiday", "tactic_id": f"t-{agent_id}",
                                         "name": name, "sales_agent_id": agent_id})
    await api.call("assign_creative", {"account": ACCOUNT, "campaign_id": "holiday", "creative_ids": [*images, "holiday-video"]})

    async def health() -> dict:
        listed = await api.call("list_campaigns", {"account": ACCOUNT})
        return listed["campaigns"][0]

    async def healthy_with(synced: int, total: int) -> dict | None:
        campaign = await health()
        sync = campaign["syncHealth"]
        return campaign if sync and sync["status"] == "healthy" and (sync["syncedTactics"], sync["totalTactics"]) == (synced, total) \
            else None
    await eventually(lambda: healthy_with(3, 3), timeout=120, what="three tactics synced and approved: healthy")

    # Two more tactics, on agents that fail: a warning, with the brief's counts.
    for agent_id, name in failing:
        created = await api.call("create_tactic", {"account": ACCOUNT, "campaign_id": "holiday", "tactic_id": f"t-{agent_id}",
                                                   "name": name, "sales_agent_id": agent_id})
        assert created["sync"]["queued"] == 11 and created["sync"]["skipped"] == 1  # the video is not for them

    async def warned() -> dict | None:
        campaign = await health()
        sync = campaign["syncHealth"]
        return campaign if sync["status"] == "warning" and sync["failuresInWindow"] == 22 else None
    campaign = await eventually(warned, timeout=60, what="a warning with the failing tactics")
    sync = campaign["syncHealth"]
    assert (sync["syncedTactics"], sync["totalTactics"], sync["approvedCreatives"], sync["totalCreatives"]) == (3, 5, 12, 12)
    assert sync["lastSyncIssue"] == "2 tactics have creative sync failures"

    async def agents_reported() -> dict | None:  # the two agents' outages, high urgency, count for the campaign
        campaign = await health()
        return campaign if campaign["notifications"]["highPriority"] >= 2 else None
    await eventually(agents_reported, timeout=30, what="the failing agents reported unavailable")

    def gauges(name: str) -> dict[str, float]:  # the worker's gauge `name`, by its one label's value
        return {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in ready_worker.metrics().splitlines()
                if line.startswith(name + "{")}

    async def on_the_dashboards(name: str, wanted: dict[str, float]) -> dict[str, float]:
        async def shown() -> dict[str, float] | None:
            found = await asyncio.to_thread(gauges, name)
            return found if all(found.get(k) == v for k, v in wanted.items()) else None
        return await eventually(shown, timeout=60, what=f"{name} {wanted}")
    down = {scoped("acct-1", agent_id): 0.0 for agent_id, _ in failing}
    up = {scoped("acct-1", agent_id): 1.0 for agent_id, _ in display}
    await on_the_dashboards("creative_sync_sales_agent_available", {**down, **up})
    await on_the_dashboards("creative_sync_campaigns", {"warning": 1.0, "healthy": 0.0})

    # The mobile agent revokes its only approved creative: high urgency, and the campaign is critical.
    body = status_webhook("acct-1", "holiday-video", key="mobile-revocation-1", to="rejected", reason="Audio too loud for mobile")
    response = await api.client.post(webhook_path(scoped("acct-1", "mobile")), data=body,
                                     headers={"Content-Type": "application/json", **hmac_headers(SECRET, body)})
    assert response.status == 200

    async def critical() -> dict | None:
        campaign = await health()
        return campaign if campaign["syncHealth"]["status"] == "critical" else None
    campaign = await eventually(critical, timeout=30, what="critical: the mobile tactic has every creative rejected")
    assert "every creative rejected (Mobile Video)" in campaign["syncHealth"]["lastSyncIssue"]

    # The fixes: the two agents come back, and the video is fixed (a content update re-syncs it).
    for agent_id, _ in failing:
        agents.sims[agent_id].config = replace(agents.sims[agent_id].config, behaviour=Behaviour())
    await api.call("sync_creatives", sync_request("acct-1", [video_creative("holiday-video", url="https://cdn.example.com/quiet.mp4")]))
    await eventually(lambda: healthy_with(5, 5), timeout=120, what="healthy once the failures are fixed")
    await on_the_dashboards("creative_sync_sales_agent_available", {a: 1.0 for a in [*down, *up]})
    await on_the_dashboards("creative_sync_campaigns", {"healthy": 1.0, "warning": 0.0, "critical": 0.0})
    assert mobile.received[-1][1] == "holiday-video"

    # What dashboards saw on the topics.
    codecs = Codecs(prefix=settings.topic_prefix)
    health_codec, note_codec = codecs.value("campaign_health"), codecs.value("notifications")
    records = await read_topic(settings.bootstrap_servers, topic_name(settings, "campaign_health"),
                               decode=lambda r: health_codec.decode(r.value),
                               until=lambda found: any(h.status.value == "HEALTHY" and h.total_tactics == 5 for h in found))
    statuses = [h.status.value for h in records]
    # Warning, then critical, then healthy (a tactic created before its creatives were assigned may
    # have made the very first record critical: the order is read from the first warning on).
    warned = statuses.index("WARNING")
    critical = statuses.index("CRITICAL", warned)
    assert "HEALTHY" in statuses[critical:], statuses
    warning = next(h for h in records if h.status.value == "WARNING" and h.failures_in_window == 22)
    assert (warning.synced_tactics, warning.total_tactics, warning.last_sync_issue) == (3, 5, "2 tactics have creative sync failures")

    def wanted(found: list) -> bool:
        return any(n.type == "campaign.healthy" and "5 of 5 tactics" in n.message for n in found)  # the last one
    notes = await read_topic(settings.bootstrap_servers, topic_name(settings, "notifications"),
                             decode=lambda r: note_codec.decode(r.value), until=wanted)
    ids = [n.notification_id for n in notes]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)  # one per logical event
    kinds = Counter(n.type for n in notes)
    unavailable = [n for n in notes if n.type == "sales_agent.unavailable"]
    # Each failing agent is reported (a rare second report of one outage is a known gap: see the session note).
    assert {public(n.sales_agent_id) for n in unavailable} == {"sports", "weather"} and len(unavailable) <= 3, unavailable
    failures = [n for n in notes if n.type == "creative.sync_failed" and n.urgency.value == "MEDIUM"]
    skips = [n for n in notes if n.type == "creative.sync_failed" and n.urgency.value == "LOW"]
    assert len(failures) == 22  # one per (creative, failing agent), not one per retry
    assert {public(n.sales_agent_id) for n in failures} == {"sports", "weather"}
    assert len(skips) == 15 and "Video format not supported" in next(n for n in skips if n.creative_id == "holiday-video").message
    assert kinds["campaign.healthy"] >= 1 and kinds["campaign.creative_sync_unhealthy"] >= 2  # warning, then critical
    rejection = [n for n in notes if n.type == "creative.rejected"]
    assert len(rejection) == 1 and rejection[0].urgency.value == "HIGH" and public(rejection[0].campaign_id) == "holiday"
    assert rejection[0].rejection_reason == "Audio too loud for mobile" and public(rejection[0].sales_agent_id) == "mobile"
    unhealthy = [n for n in notes if n.type == "campaign.creative_sync_unhealthy"]
    urgencies = [n.urgency.value for n in unhealthy]  # a warning, then critical (read from the first warning
    assert "HIGH" in urgencies[urgencies.index("MEDIUM"):], urgencies  # on, as the health records above)

    # The same, through the API: filters, and acting on them.
    listed = await api.call("list_notifications", {"account": ACCOUNT, "types": ["creative.rejected"], "urgency": ["high"]})
    assert [n["references"]["creative_id"] for n in listed["notifications"]] == ["holiday-video"]
    by_campaign = await api.call("list_notifications", {"account": ACCOUNT, "campaign_id": "holiday", "pagination": {"max_results": 5}})
    assert len(by_campaign["notifications"]) == 5 and by_campaign["pagination"]["has_more"]
    await api.call("acknowledge_notifications", {"account": ACCOUNT, "notification_ids": [listed["notifications"][0]["notification_id"]]})
    open_high = await api.call("list_notifications", {"account": ACCOUNT, "types": ["creative.rejected"], "acknowledged": False})
    assert open_high["notifications"] == []
    await api.call("mark_all_notifications_read", {"account": ACCOUNT})
    assert (await api.call("list_notifications", {"account": ACCOUNT, "unread_only": True}))["notifications"] == []
    assert (await health())["notifications"] == {"unread": 0, "highPriority": 0}

    # The creative view of the brief.
    video = await api.call("get_creative", {"account": ACCOUNT, "creative_id": "holiday-video"})
    assert video["syncStatusSummary"]["totalRelevantAgents"] == 1 and video["syncStatusSummary"]["approved"] == 1
    assert video["syncStatusSummary"]["skipped"] == 4 and video["campaign_ids"] == ["holiday"]
    assert {d["salesAgentId"]: d["status"] for d in video["syncDetails"]}["mobile"] == "synced"

    # Another account sees none of it, and cannot act on it.
    store = PrincipalStore(settings.principals_file)
    rival = TestClient(TestServer(create_app(settings, principals=store)))
    await rival.start_server()
    try:
        others = Api(rival, store.add("rival", ["acct-2"])[1])
        theirs = {"account_id": "acct-2"}
        assert (await others.call("list_notifications", {"account": theirs}))["notifications"] == []
        assert (await others.call("list_campaigns", {"account": theirs}))["campaigns"] == []
        acted = await others.call("acknowledge_notifications", {"account": theirs, "notification_ids": ids[:3]})
        assert acted["acknowledged"] == []
        await others.call("list_notifications", {"account": ACCOUNT}, status=403)
        await others.call("get_creative", {"account": theirs, "creative_id": "holiday-video"}, status=404)
    finally:
        await rival.close()
