"""The plan of a sync trigger (pure): each creative matched against each agent; the compatible
pairs become jobs for the sync engine, the others are recorded skipped with the reason, and the
trigger's answer says, per creative, where it was queued and where skipped."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streams.matching.logic import Match, formats_of, match, traits_of
from streams.sync.logic import formats_known, job_id_for, stable_id
from topics.events import CreativeChanged, SalesAgent, SyncItem, SyncOutcome, SyncResult, SyncTrigger, SyncTriggerCommand
from topics.ids import public

#: A job for an agent still being discovered: the sync engine waits for its formats, then sends the
#: creative in one it lists, or records it skipped with the reason.
AWAITING_DISCOVERY = "awaiting_discovery"


@dataclass
class SyncPlan:
    answers: list[dict[str, Any]] = field(default_factory=list)  # per creative: queued at / skipped at
    results: list[SyncResult] = field(default_factory=list)  # the queued and skipped marks of the status
    jobs: dict[str, list[SyncItem]] = field(default_factory=dict)  # sales agent -> what to deliver


def plan_syncs(account_id: str, changes: Sequence[CreativeChanged], agents: Sequence[SalesAgent], *, trigger: str,
               cause: str, now: datetime) -> SyncPlan:
    """`cause` makes the job ids: the same trigger planned again plans the same jobs."""
    formats = {a.sales_agent_id: formats_of(a.name, a.declared_formats,
                                            json.loads(a.discovered_formats_json) if a.discovered_formats_json else [])
               for a in agents}
    plan = SyncPlan()
    for change in changes:
        traits = traits_of(json.loads(change.creative_json))
        queued, skipped = [], []
        for agent in agents:
            verdict = match(traits, formats[agent.sales_agent_id]) if formats_known(agent) else Match(True, AWAITING_DISCOVERY)
            job_id = job_id_for(trigger, account_id, change.creative_id, change.content_version, agent.sales_agent_id,
                                cause=cause)
            common = dict(job_id=job_id, sales_agent_id=agent.sales_agent_id, account_id=account_id,
                          creative_id=change.creative_id, content_version=change.content_version)
            if verdict.compatible:
                queued.append({"sales_agent_id": public(agent.sales_agent_id), "name": agent.name,
                               **({"state": AWAITING_DISCOVERY} if verdict.by == AWAITING_DISCOVERY else {"matched_by": verdict.by})})
                plan.jobs.setdefault(agent.sales_agent_id, []).append(SyncItem(
                    job_id=job_id, creative_id=change.creative_id, content_version=change.content_version,
                    creative_json=change.creative_json))
                plan.results.append(SyncResult(**common, result_id=f"{job_id}-queued", outcome=SyncOutcome.SYNCING,
                                               attempt=0, occurred_at=now))
            else:
                skipped.append({"sales_agent_id": public(agent.sales_agent_id), "name": agent.name, "reason": verdict.reason})
                plan.results.append(SyncResult(**common, result_id=f"{job_id}-skipped", outcome=SyncOutcome.SKIPPED,
                                               attempt=0, reason=verdict.reason, occurred_at=now))
        plan.answers.append({"creative_id": change.creative_id, "content_version": change.content_version,
                             "queued": queued, "skipped": skipped})
    return plan


def content_change_triggers(resyncs: Mapping[tuple[str, str], Sequence[SyncItem]], now: datetime) -> list[SyncTriggerCommand]:
    """The re-syncs a take of content changes asks for ((agent, account) -> the changed creatives
    it has), as triggers for the matcher: one per account and set of agents, naming the creatives
    that go to exactly those agents (so that the matcher's entries carry many creatives, not one).
    The ids are deterministic, and the matcher makes content-change job ids from the creative
    version alone: a replayed take, or two changes in a row, queue the same jobs."""
    agents_of: dict[tuple[str, str], set[str]] = {}
    versions: dict[tuple[str, str], int] = {}
    for (agent_id, account_id), items in resyncs.items():
        for item in items:
            agents_of.setdefault((account_id, item.creative_id), set()).add(agent_id)
            versions[(account_id, item.creative_id)] = item.content_version
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (account_id, creative_id), agents in sorted(agents_of.items()):
        groups.setdefault((account_id, tuple(sorted(agents))), []).append(creative_id)
    return [SyncTriggerCommand(
        trigger_id="content_" + stable_id("content", account_id, [(c, versions[(account_id, c)]) for c in creatives],
                                          agents)[:32],
        account_id=account_id, trigger=SyncTrigger.CONTENT_CHANGE, creative_ids=creatives, sales_agent_ids=list(agents),
        requested_at=now) for (account_id, agents), creatives in groups.items()]
