"""The matcher processor: decides which sales agents get which creatives when a sync is triggered
(manual sync, assignment to a campaign, a new tactic; from the gateway or an upstream producer; a
content change, from the status processor, naming the agents that have the creative),
queues the compatible pairs for the sync engine and records the others as skipped with a reason.

Reads: sync triggers (keyed by account: co-partitioned with the library commands and the campaigns,
so the creatives a trigger names, the account's campaigns and their tactics' activity are in this
worker's tables), the sales-agent registry (a small global view). Writes: sync results (queued and
skipped marks), sync jobs (DELIVER entries per agent), task results (the trigger's answer, under
its trigger_id).
"""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from collections.abc import Callable
from typing import Any

from streams.library.queries import view_of
from streams.matching.logic import TacticActivity, detected_agents
from streams.matching.plan import plan_syncs
from streams.runtime import consume, stored_row
from streams.sync.logic import by_partition, deliver_entries
from topics.codec import to_json
from topics.events import (CampaignActivity, EntityType, SalesAgent, SyncTrigger, SyncTriggerCommand, TaskResult, TaskStatus)
from topics.ids import public

PROCESSOR = "matcher"


def _visible(agent: SalesAgent | None, account_id: str) -> bool:
    return agent is not None and not agent.deleted and agent.account_id == account_id


def agents_for(trigger: SyncTriggerCommand, directory: Any, campaigns: Any,
               activity_of: Callable[[str], CampaignActivity | None], now: datetime) -> tuple[list[SalesAgent], str]:
    """The agents of a trigger, and how they were chosen: those it names; else a campaign's active
    tactics (`campaign_id`); else the 30-day tactic activity of the brand agent (`brand_agent_id`,
    or the brand agents of the creatives' campaigns, or all of the account's); an account without
    any tactic: every registered agent (format compatibility filters all of them). `activity_of`:
    a campaign's tactic activity (table campaign_activity)."""
    account_id = trigger.account_id
    if trigger.sales_agent_ids is not None:
        agents = [a for a in (directory.get(i) for i in dict.fromkeys(trigger.sales_agent_ids)) if _visible(a, account_id)]
        return agents, "sales_agent_ids"
    campaign_id, brand_agent_id = trigger.campaign_id, trigger.brand_agent_id
    if campaign_id is not None:
        campaign = campaigns.get(EntityType.CAMPAIGN.value, campaign_id)
        brands, chosen_by = {str(campaign.brand_agent_id)} if campaign else set(), f"campaign {public(campaign_id)}"
    elif brand_agent_id is not None:
        brands = {brand_agent_id}
        chosen_by = f"brand agent {public(brand_agent_id)}: tactic activity in the last 30 days"
    else:
        brands = {str(c.brand_agent_id) for i in trigger.creative_ids for cid in campaigns.campaigns_of(account_id, i)
                  if (c := campaigns.get(EntityType.CAMPAIGN.value, cid)) is not None}
        brands = brands or {b.entity_id for b in campaigns.of_account(EntityType.BRAND_AGENT.value, account_id)}
        chosen_by = "brand agents' tactic activity in the last 30 days"
    tactics = campaigns.of_account(EntityType.TACTIC.value, account_id)
    if not tactics and campaign_id is None and brand_agent_id is None:
        agents = (a for a in directory.active() if _visible(a, account_id))
        return sorted(agents, key=lambda a: a.sales_agent_id), "every registered sales agent (no tactics yet)"
    # Now: the active tactics of active campaigns; the last 30 days: the campaign_activity table's
    # changelog (tactics since paused, past syncs).
    history = []
    for tactic in tactics:
        campaign = campaigns.get(EntityType.CAMPAIGN.value, str(tactic.campaign_id))
        if campaign is not None:
            history.append(TacticActivity(str(tactic.brand_agent_id), campaign.entity_id, str(tactic.sales_agent_id),
                                          active=tactic.status == "active" and campaign.status == "active",
                                          created_at=tactic.created_at))
    for campaign in campaigns.of_account(EntityType.CAMPAIGN.value, account_id):
        record = activity_of(campaign.entity_id)
        for past in (record.tactics if record is not None else ()):
            history.append(TacticActivity(str(record.brand_agent_id), record.campaign_id, past.sales_agent_id, active=False,
                                          created_at=past.created_at, updated_at=past.last_active_at,
                                          last_synced_at=past.last_synced_at))
    found = detected_agents(history, brands, now, campaign_id=campaign_id)
    return [a for a in (directory.get(i) for i in found) if _visible(a, account_id)], chosen_by


#: How long a trigger waits for what it names (a sales agent, a campaign) to reach this worker: the
#: gateway publishes a registration (or a campaign), then a sync naming it, on different topics.
ARRIVAL_WAIT_S = 15.0


async def arrived(trigger: SyncTriggerCommand, directory: Any, campaigns: Any, timeout_s: float = ARRIVAL_WAIT_S) -> None:
    """Until the views have every agent and the campaign the trigger names, or `timeout_s` passed
    (then the trigger is planned with what is known: an agent still missing is left out)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        waits = []
        if any(directory.get(i) is None for i in trigger.sales_agent_ids or ()):
            waits.append(directory.agents.changed.wait())
        if trigger.campaign_id is not None and campaigns.get(EntityType.CAMPAIGN.value, trigger.campaign_id) is None:
            waits.append(campaigns.changed.wait())
        remaining = deadline - asyncio.get_running_loop().time()
        if not waits or remaining <= 0:
            for pending in waits:
                pending.close()
            return
        _, pending = await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=remaining,
                                           return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    app, codecs, metrics = pipeline.app, pipeline.codecs, pipeline.metrics
    library, activity = pipeline.library, pipeline.tables["campaign_activity"]
    result_key, result_value = codecs.key("task_results"), codecs.value("task_results")
    results_key, results_value = codecs.key("sync_results"), codecs.value("sync_results")
    jobs_key, jobs_value = codecs.key("sync_jobs"), codecs.value("sync_jobs")
    partition_of_result = codecs.partition_of("sync_results")

    async def answer(trigger: SyncTriggerCommand, body: dict[str, Any], failed: bool = False) -> None:
        result = TaskResult(task_id=trigger.trigger_id, account_id=trigger.account_id, task_type="sync_creative_to_sales_agents",
                            status=TaskStatus.FAILED if failed else TaskStatus.COMPLETED, result_json=to_json(body),
                            completed_at=datetime.now(UTC))
        await pipeline.publish("task_results", result_key.encode(trigger.trigger_id), result_value.encode(result))

    async def handle(trigger: SyncTriggerCommand, event) -> None:  # noqa: ANN001
        stored = {cid: library.get(trigger.account_id, cid) for cid in dict.fromkeys(trigger.creative_ids)}
        missing = [cid for cid, s in stored.items() if s is None or s.status == "archived"]
        if missing and trigger.trigger is SyncTrigger.MANUAL:  # a manual sync names creatives that must exist
            await answer(trigger, {"errors": [{"code": "REFERENCE_NOT_FOUND", "recovery": "correctable",
                                               "message": f"No creative {missing[0]} in this library.",
                                               "field": "creative_ids"}], "missing": missing}, failed=True)
            return
        content_change = trigger.trigger is SyncTrigger.CONTENT_CHANGE
        if not content_change:  # (a content change names agents that had the creative: known here long since)
            await arrived(trigger, pipeline.directory, pipeline.campaigns)
        now = datetime.now(UTC)
        agents, chosen_by = agents_for(trigger, pipeline.directory, pipeline.campaigns,
                                       lambda campaign_id: stored_row(activity, campaign_id, event), now)
        changes = [view_of(s) for s in stored.values() if s is not None and s.status != "archived"]
        # A content change's jobs are made from the version alone: two changes in a row, or a
        # replayed take of the status processor, plan the same jobs for the latest version.
        plan = plan_syncs(trigger.account_id, changes, sorted(agents, key=lambda a: a.sales_agent_id),
                          trigger=trigger.trigger.value, cause="" if content_change else trigger.trigger_id, now=now)
        # Status first: a fast agent's answer must not be overtaken by "queued".
        for key, group in by_partition(plan.results, partition_of_result):
            await pipeline.publish("sync_results", results_key.encode(key), results_value.encode(group))
        for agent_id, items in plan.jobs.items():
            for entry in deliver_entries(agent_id, trigger.account_id, items, trigger=trigger.trigger, now=now,
                                         campaign_id=trigger.campaign_id, tactic_id=trigger.tactic_id):
                await pipeline.publish("sync_jobs", jobs_key.encode(agent_id), jobs_value.encode(entry))
        if not content_change:  # (nobody asked: its outcome is in the status rows)
            await answer(trigger, {"creatives": plan.answers, "sales_agents_from": chosen_by, "missing": missing})

    @app.agent(pipeline.topics["sync_triggers"], name=PROCESSOR)
    async def matcher(stream):  # noqa: ANN001
        await consume(stream, processor=PROCESSOR, codec=codecs.value("sync_triggers"), handle=handle,
                      dead_letters=pipeline.dead_letters, metrics=metrics)
