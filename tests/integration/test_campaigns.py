"""Campaigns end to end: brand agents, campaigns, tactics and assignments through the real gateway,
and the sync triggers they fire, through the real worker to simulated sales agents."""
from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from creative_sync.samples import sync_request, video_creative
from creative_sync.sim_agents import SimAgentConfig
from gateway.app import create_app
from gateway.auth import PrincipalStore
from tests.integration.sales_agents import Api, eventually, image_kind_creative, register

ACCOUNT = {"account_id": "acct-1"}


def agents_of(summary: dict, creative_id: str, part: str) -> list[str]:
    return sorted(a["sales_agent_id"] for c in summary["creatives"] if c["creative_id"] == creative_id for a in c[part])


async def test_assignment_new_tactic_and_manual_sync_reach_only_compatible_agents_of_the_campaign(api, agents):
    for agent_id, name, kinds in (("display", "Daily News", ("image",)), ("video", "StreamCo", ("video_hosted",)),
                                  ("display-2", "Metro Daily", ("image",)), ("video-2", "ClipNet", ("video_hosted",)),
                                  ("elsewhere", "Other Brand's Site", ("image",))):
        await agents.add(SimAgentConfig(agent_id, name, kinds))
        await register(api, agents, agent_id, name, formats=list(kinds))
    await api.call("sync_creatives", sync_request("acct-1", [image_kind_creative("banner", 300, 250), video_creative("clip")]))

    brand = (await api.call("create_brand_agent", {"account": ACCOUNT, "name": "Acme Outdoor"}))["brand_agent"]
    other = (await api.call("create_brand_agent", {"account": ACCOUNT, "name": "Other Brand"}))["brand_agent"]
    holiday = (await api.call("create_campaign", {"account": ACCOUNT, "brand_agent_id": brand["brand_agent_id"],
                                                  "campaign_id": "holiday", "name": "Holiday Campaign"}))["campaign"]
    assert holiday["status"] == "active"
    for tactic_id, agent_id in (("t-display", "display"), ("t-video", "video")):
        created = await api.call("create_tactic", {"account": ACCOUNT, "campaign_id": "holiday", "tactic_id": tactic_id,
                                                   "name": f"{agent_id} tactic", "sales_agent_id": agent_id})
        assert created["sync"]["queued"] == 0  # nothing assigned yet
    other_campaign = await api.call("create_campaign", {"account": ACCOUNT, "brand_agent_id": other["brand_agent_id"],
                                                        "name": "Other"})
    await api.call("create_tactic", {"account": ACCOUNT, "campaign_id": other_campaign["campaign"]["campaign_id"],
                                     "name": "elsewhere", "sales_agent_id": "elsewhere"})

    # Assignment: each creative to the compatible agents of the campaign's active tactics only.
    assigned = await api.call("assign_creative", {"account": ACCOUNT, "campaign_id": "holiday", "creative_ids": ["banner", "clip"]})
    assert assigned["assigned"] == ["banner", "clip"]
    assert agents_of(assigned["sync"], "banner", "queued") == ["display"]
    assert agents_of(assigned["sync"], "banner", "skipped") == ["video"]
    assert agents_of(assigned["sync"], "clip", "queued") == ["video"]
    assert agents_of(assigned["sync"], "clip", "skipped") == ["display"]

    def received(agent_id: str) -> set[str]:
        return {creative_id for _, creative_id, _ in agents.sims[agent_id].received}

    def holds(condition):  # noqa: ANN001, ANN202
        async def probe() -> bool:
            return condition()
        return probe

    await eventually(holds(lambda: received("display") == {"banner"} and received("video") == {"clip"}), timeout=120,
                     what="banner at display and clip at video")

    # A new tactic: the campaign's compatible creatives go to its agent.
    created = await api.call("create_tactic", {"account": ACCOUNT, "campaign_id": "holiday", "tactic_id": "t-display-2",
                                               "name": "Metro", "sales_agent_id": "display-2"})
    assert agents_of(created["sync"], "banner", "queued") == ["display-2"]
    assert agents_of(created["sync"], "clip", "skipped") == ["display-2"]
    await eventually(holds(lambda: received("display-2") == {"banner"}), what="banner at the new tactic's agent")

    # Unassigned: the campaign's later syncs leave it out.
    unassigned = await api.call("unassign_creative", {"account": ACCOUNT, "campaign_id": "holiday", "creative_id": "clip"})
    assert unassigned["unassigned"] == ["clip"]
    created = await api.call("create_tactic", {"account": ACCOUNT, "campaign_id": "holiday", "tactic_id": "t-video-2",
                                               "name": "ClipNet", "sales_agent_id": "video-2"})
    assert [c["creative_id"] for c in created["sync"]["creatives"]] == ["banner"]
    assert agents_of(created["sync"], "banner", "skipped") == ["video-2"] and created["sync"]["queued"] == 0

    # Manual sync with no agents named: the brand agent's tactics' agents, filtered by format; the
    # agent active only for another brand agent is left out.
    manual = await api.call("sync_creative_to_sales_agents", {"account": ACCOUNT, "creative_id": "banner"})
    assert sorted(a["sales_agent_id"] for a in manual["queued"]) == ["display", "display-2"]
    assert sorted(a["sales_agent_id"] for a in manual["skipped"]) == ["video", "video-2"]
    assert "tactic activity" in manual["sales_agents_from"]
    limited = await api.call("sync_creative_to_sales_agents", {"account": ACCOUNT, "creative_id": "banner", "campaign_id": "holiday"})
    assert sorted(a["sales_agent_id"] for a in limited["queued"]) == ["display", "display-2"]
    explicit = await api.call("sync_creative_to_sales_agents", {"account": ACCOUNT, "creative_id": "banner",
                                                                "sales_agent_ids": ["elsewhere"]})
    assert [a["sales_agent_id"] for a in explicit["queued"]] == ["elsewhere"]
    assert received("elsewhere") <= {"banner"}  # (only ever by the explicit request)

    # A tactic paused today still counts for the brand agent's last 30 days (the worker's
    # campaign_activity table), but no longer for its campaign's active tactics.
    await api.call("update_tactic", {"account": ACCOUNT, "tactic_id": "t-display-2", "status": "paused"})

    async def paused_but_recent() -> dict | None:
        answer = await api.call("sync_creative_to_sales_agents", {"account": ACCOUNT, "creative_id": "banner",
                                                                   "brand_agent_id": brand["brand_agent_id"]})
        return answer if "display-2" in [a["sales_agent_id"] for a in answer["queued"]] else None
    await eventually(paused_but_recent, timeout=30, what="the paused tactic's agent detected from its recent activity")
    limited = await api.call("sync_creative_to_sales_agents", {"account": ACCOUNT, "creative_id": "banner", "campaign_id": "holiday"})
    assert [a["sales_agent_id"] for a in limited["queued"]] == ["display"]

    listed = await api.call("list_campaigns", {"account": ACCOUNT, "brand_agent_id": brand["brand_agent_id"]})
    assert [(c["campaign_id"], c["tactics"], c["creatives"]) for c in listed["campaigns"]] == [("holiday", 4, 1)]


async def test_campaigns_of_one_account_are_invisible_to_another(api, topics_created):
    store = PrincipalStore(topics_created.principals_file)
    token = store.add("rival", ["acct-2"])[1]
    client = TestClient(TestServer(create_app(topics_created, principals=store)))
    await client.start_server()
    rival = Api(client, token)
    try:
        brand = (await api.call("create_brand_agent", {"account": ACCOUNT, "name": "Acme"}))["brand_agent"]
        await api.call("create_campaign", {"account": ACCOUNT, "brand_agent_id": brand["brand_agent_id"],
                                           "campaign_id": "secret", "name": "Secret launch"})
        mine = await api.call("list_campaigns", {"account": ACCOUNT})
        assert [c["campaign_id"] for c in mine["campaigns"]] == ["secret"]
        theirs = {"account_id": "acct-2"}

        async def rival_sees_nothing() -> bool:
            listed = await rival.call("list_campaigns", {"account": theirs})
            brands = await rival.call("list_brand_agents", {"account": theirs})
            return listed["campaigns"] == [] and brands["brand_agents"] == []
        assert await rival_sees_nothing()
        missing = await rival.call("assign_creative", {"account": theirs, "campaign_id": "secret", "creative_id": "x"}, status=404)
        assert missing["errors"][0]["code"] == "REFERENCE_NOT_FOUND"
        await rival.call("list_tactics", {"account": theirs, "campaign_id": "secret"}, status=404)
        await rival.call("update_campaign", {"account": theirs, "campaign_id": "secret", "status": "paused"}, status=404)
        await rival.call("list_campaigns", {"account": ACCOUNT}, status=403)  # not its account at all
        taken = await rival.call("create_campaign", {"account": theirs, "brand_agent_id": brand["brand_agent_id"],
                                                     "name": "Borrowed brand"}, status=404)
        assert taken["errors"][0]["field"] == "brand_agent_id"
        assert (await api.call("list_campaigns", {"account": ACCOUNT}))["campaigns"][0]["status"] == "active"
    finally:
        await client.close()
