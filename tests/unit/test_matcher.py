"""The matcher's decisions (over in-memory tables and views): which agents a trigger reaches, and the
plan of jobs and skips with reasons."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from creative_sync.samples import display_creative, video_creative
from streams.campaigns.store import CampaignStore, row_key
from streams.matching.agent import agents_for
from streams.matching.plan import AWAITING_DISCOVERY, plan_syncs
from topics.catalogue import Codecs
from topics.events import (AgentProtocol, CampaignEntity, ChangeKind, CreativeChanged, EntityType, SalesAgent, SyncOutcome,
                           SyncTrigger, SyncTriggerCommand)
from tests.support import MemoryTable
from topics.views import AgentDirectory

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def agent(agent_id: str, account: str = "acct", kinds: tuple[str, ...] = ("image",), discovered: bool = True) -> SalesAgent:
    formats = [{"format_id": {"agent_url": "https://creative.adcontextprotocol.org", "id": "display_300x250"},
                "name": "Medium rectangle", "type": "display"}] if "image" in kinds else []
    return SalesAgent(sales_agent_id=f"{account}~{agent_id}", account_id=account, name=agent_id.title(),
                      agent_url=f"https://{agent_id}.example/mcp", protocol=AgentProtocol.MCP,
                      declared_formats=list(kinds) if discovered else [],  # nothing known until discovery
                      discovered_formats_json=json.dumps(formats) if discovered else None, updated_at=NOW)


def entity(kind: EntityType, entity_id: str, **fields) -> CampaignEntity:
    return CampaignEntity(entity_type=kind, entity_id=f"acct~{entity_id}", account_id="acct", updated_at=NOW,
                          created_at=NOW - timedelta(days=1), **fields)


def views(*agents: SalesAgent, entities: tuple[CampaignEntity, ...] = ()):
    directory = AgentDirectory("unused:9092", Codecs(), "", box=None)
    for a in agents:
        directory.agents.apply(a)
    table = MemoryTable("campaign_entities")
    for e in entities:
        table.put(row_key(e), e)
    return directory, CampaignStore(table, lambda account_id: 0), lambda campaign_id: None  # no activity recorded


def trigger(**fields) -> SyncTriggerCommand:
    return SyncTriggerCommand(trigger_id="t-1", account_id="acct", trigger=SyncTrigger.MANUAL, creative_ids=["c1"],
                              requested_at=NOW, **fields)


def test_named_agents_are_only_those_of_the_account():
    directory, campaigns, activity = views(agent("news"), agent("spy", account="other"))
    found, chosen_by = agents_for(trigger(sales_agent_ids=["acct~news", "other~spy", "acct~gone"]),
                                  directory, campaigns, activity, NOW)
    assert [a.sales_agent_id for a in found] == ["acct~news"] and chosen_by == "sales_agent_ids"


def test_an_account_without_tactics_reaches_every_agent_of_its_own():
    directory, campaigns, activity = views(agent("news"), agent("sports"), agent("spy", account="other"))
    found, chosen_by = agents_for(trigger(), directory, campaigns, activity, NOW)
    assert [a.sales_agent_id for a in found] == ["acct~news", "acct~sports"]
    assert chosen_by == "every registered sales agent (no tactics yet)"


def test_a_campaign_reaches_the_agents_of_its_active_tactics_only():
    brand = entity(EntityType.BRAND_AGENT, "brand")
    campaign = entity(EntityType.CAMPAIGN, "holiday", brand_agent_id="acct~brand", campaign_id="acct~holiday", status="active")
    active = entity(EntityType.TACTIC, "t1", brand_agent_id="acct~brand", campaign_id="acct~holiday",
                    sales_agent_id="acct~news", status="active")
    paused = entity(EntityType.TACTIC, "t2", brand_agent_id="acct~brand", campaign_id="acct~holiday",
                    sales_agent_id="acct~sports", status="paused")
    directory, campaigns, activity = views(agent("news"), agent("sports"), entities=(brand, campaign, active, paused))
    found, chosen_by = agents_for(trigger(campaign_id="acct~holiday"), directory, campaigns, activity, NOW)
    assert [a.sales_agent_id for a in found] == ["acct~news"] and chosen_by == "campaign holiday"


def change(creative: dict) -> CreativeChanged:
    return CreativeChanged(event_id="e", account_id="acct", creative_id=creative["creative_id"], change=ChangeKind.CREATED,
                           content_version=1, content_hash="h", creative_json=json.dumps(creative), command_id="cmd",
                           created_at=NOW, updated_at=NOW)


def test_the_plan_queues_what_fits_skips_the_rest_with_a_reason_and_is_the_same_when_replayed():
    agents = [agent("news"), agent("fresh", discovered=False)]
    changes = [change(display_creative("banner")), change(video_creative("spot"))]
    plan = plan_syncs("acct", changes, agents, trigger="MANUAL", cause="t-1", now=NOW)
    banner, spot = plan.answers
    assert [q["sales_agent_id"] for q in banner["queued"]] == ["news", "fresh"]
    assert banner["queued"][1]["state"] == AWAITING_DISCOVERY  # formats not known yet: the engine waits for them
    assert [s["sales_agent_id"] for s in spot["skipped"]] == ["news"] and spot["skipped"][0]["reason"]
    assert {r.outcome for r in plan.results} == {SyncOutcome.SYNCING, SyncOutcome.SKIPPED}
    assert sorted(plan.jobs) == ["acct~fresh", "acct~news"]
    again = plan_syncs("acct", changes, agents, trigger="MANUAL", cause="t-1", now=NOW)
    other = plan_syncs("acct", changes, agents, trigger="MANUAL", cause="t-2", now=NOW)
    assert [r.job_id for r in again.results] == [r.job_id for r in plan.results]  # a redelivered trigger: same jobs
    assert not {r.job_id for r in other.results} & {r.job_id for r in plan.results}


async def test_a_trigger_waits_for_the_agent_it_names_to_reach_the_registry_view():
    import asyncio

    from streams.matching.agent import arrived

    directory, campaigns, _ = views()

    async def registration_arrives() -> None:
        await asyncio.sleep(0.2)
        directory.agents.apply(agent("news"))
        directory.agents.changed.set()  # what the view's consumer does after a batch
    arriving = asyncio.create_task(registration_arrives())
    await asyncio.wait_for(arrived(trigger(sales_agent_ids=["acct~news"]), directory, campaigns, timeout_s=30), 30)
    assert directory.get("acct~news") is not None
    await arriving
    started = asyncio.get_running_loop().time()
    await arrived(trigger(sales_agent_ids=["acct~never"]), directory, campaigns, timeout_s=0.3)  # gives up, bounded
    assert asyncio.get_running_loop().time() - started < 5


def test_a_take_of_content_changes_becomes_one_trigger_per_account_and_set_of_agents():
    from streams.matching.plan import content_change_triggers
    from topics.events import SyncItem

    def item(creative_id: str, version: int = 2) -> SyncItem:
        return SyncItem(job_id=f"j-{creative_id}", creative_id=creative_id, content_version=version, creative_json="{}")
    resyncs = {("acct~a", "acct"): [item("c1"), item("c2")], ("acct~b", "acct"): [item("c1"), item("c2"), item("c3")],
               ("other~a", "other"): [item("x")]}
    triggers = content_change_triggers(resyncs, NOW)
    shape = sorted((t.account_id, tuple(t.sales_agent_ids), tuple(t.creative_ids)) for t in triggers)
    assert shape == [("acct", ("acct~a", "acct~b"), ("c1", "c2")), ("acct", ("acct~b",), ("c3",)),
                     ("other", ("other~a",), ("x",))]
    assert all(t.trigger is SyncTrigger.CONTENT_CHANGE for t in triggers)
    assert [t.trigger_id for t in content_change_triggers(resyncs, NOW)] == [t.trigger_id for t in triggers]  # replays
    newer = {**resyncs, ("other~a", "other"): [item("x", 3)]}
    assert {t.trigger_id for t in content_change_triggers(newer, NOW)} != {t.trigger_id for t in triggers}


def test_a_content_change_is_matched_again_and_its_jobs_depend_on_the_version_alone():
    """Planned by the matcher, a new version that no longer fits an agent is skipped there with a
    reason; its job ids do not depend on which trigger brought it (two changes in a row: one job)."""
    banner = CreativeChanged(event_id="e", account_id="acct", creative_id="c1", change=ChangeKind.CONTENT, content_version=3,
                             content_hash="h", creative_json=json.dumps(video_creative("c1")), status="approved",
                             created_at=NOW, updated_at=NOW, command_id="cmd")
    first = plan_syncs("acct", [banner], [agent("a")], trigger=SyncTrigger.CONTENT_CHANGE.value, cause="", now=NOW)
    assert not first.jobs and first.results[0].outcome is SyncOutcome.SKIPPED and first.results[0].reason
    fits = banner.model_copy(update={"creative_json": json.dumps(display_creative("c1"))})
    one = plan_syncs("acct", [fits], [agent("a")], trigger=SyncTrigger.CONTENT_CHANGE.value, cause="", now=NOW)
    again = plan_syncs("acct", [fits], [agent("a")], trigger=SyncTrigger.CONTENT_CHANGE.value, cause="", now=NOW)
    assert one.jobs["acct~a"][0].job_id == again.jobs["acct~a"][0].job_id
