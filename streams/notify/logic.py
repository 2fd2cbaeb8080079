"""Notifications as pure functions: transitions in (a creative's status rows before and after, a
campaign's health before and after, a sales agent becoming unavailable), actionable
notifications out.

Every id is deterministic, made from the logical event (what changed, and the state it changed
from), so a retried or replayed transition yields the same notification id, never a second one.
No I/O and no clock: `now` is passed in.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from topics.events import CampaignHealth, CreativeSyncState, HealthStatus, Notification, SyncState, SyncStatus, Urgency
from topics.ids import public, public_all

TYPES = ("creative.sync_started", "creative.sync_completed", "creative.sync_failed", "creative.approved",
         "creative.rejected", "campaign.creative_sync_unhealthy", "campaign.missing_creatives", "campaign.healthy",
         "sales_agent.unavailable")


def notification_id(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CampaignRef:
    """A campaign a creative belongs to, with a tactic on the agent in question."""

    campaign_id: str
    brand_agent_id: str | None
    name: str


def _rows(state: CreativeSyncState | None) -> dict[str, SyncStatus]:
    return {r.sales_agent_id: r for r in state.rows} if state is not None else {}


def _names(agent_ids: Sequence[str], names: Mapping[str, str]) -> str:
    shown = [names.get(a) or public(a) for a in agent_ids]
    return ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def creative_notifications(before: CreativeSyncState | None, after: CreativeSyncState, *, names: Mapping[str, str],
                           now: datetime, losing_last_approval: Callable[[str], list[CampaignRef]] = lambda agent: []
                           ) -> list[Notification]:
    """What one change of a creative's rows is worth telling: syncs started, completed and approved
    (one notification each per change, naming the agents), each failure or skip, each rejection.
    `losing_last_approval(agent)` names the campaigns whose tactic on that agent has no approved
    creative left once this one is rejected: such a rejection is high urgency."""
    old, new = _rows(before), _rows(after)
    account, creative = after.account_id, after.creative_id
    out: list[Notification] = []

    def note(kind: str, urgency: Urgency, message: str, *id_parts: Any, **refs: Any) -> None:
        out.append(Notification(notification_id=notification_id(kind, account, creative, *id_parts), account_id=account,
                                type=kind, urgency=urgency, message=message, creative_id=creative, created_at=now, **refs))

    started = sorted(a for a, r in new.items() if r.sync_status in (SyncState.PENDING, SyncState.SYNCING)
                     and (a not in old or old[a].sync_status not in (SyncState.PENDING, SyncState.SYNCING)))
    if started:
        resync = any(new[a].content_version_synced is not None for a in started)
        verb = "Re-syncing updated creative" if resync else "Syncing creative"
        note("creative.sync_started", Urgency.LOW, f"{verb} {creative} to {_plural(len(started), 'sales agent')}: "
             f"{_names(started, names)}", after.content_version, started, [old[a].updated_at if a in old else None for a in started],
             action_required="Monitor for approval updates")
    completed = sorted(a for a, r in new.items() if r.sync_status is SyncState.SYNCED
                       and (a not in old or old[a].sync_status is not SyncState.SYNCED
                            or (old[a].content_version_synced or 0) < (r.content_version_synced or 0)))
    if completed:
        note("creative.sync_completed", Urgency.LOW, f"Creative {creative} synced to {_names(completed, names)}",
             [(a, new[a].content_version_synced) for a in completed])
    approvals: list[tuple[str, int | None, datetime | None]] = []  # (agent, version, episode)
    for agent, row in sorted(new.items()):
        was = old.get(agent)
        episode = was.updated_at if was is not None else None  # the state it left: one notification per episode
        agent_name = names.get(agent) or public(agent)
        if row.sync_status in (SyncState.FAILED, SyncState.SKIPPED) and (was is None or was.sync_status is not row.sync_status):
            reason = (row.last_error if row.sync_status is SyncState.FAILED else row.skip_reason) or "no reason given"
            skipped = row.sync_status is SyncState.SKIPPED
            note("creative.sync_failed", Urgency.LOW if skipped else Urgency.MEDIUM,
                 f"Creative sync {'skipped' if skipped else 'failed'} at {agent_name}: {reason}", agent, row.sync_status.value, episode,
                 sales_agent_id=agent, rejection_reason=reason,
                 action_required="Update creative format or exclude this agent" if skipped
                 else "Retried automatically; check the sales agent is reachable, or exclude it")
        approval = row.approval_status
        if row.sync_status is SyncState.SYNCED and approval != (was.approval_status if was else None):
            if approval == "approved":
                approvals.append((agent, row.content_version_synced, episode))
            elif approval in ("rejected", "suspended"):
                campaigns = losing_last_approval(agent)
                reason = row.rejection_reason or "no reason given"
                message = f"Creative {creative} {approval} by {agent_name}: {reason}"
                if campaigns:
                    message += (f". {campaigns[0].name} has no approved creative left on {agent_name}"
                                + (f" (and {len(campaigns) - 1} more campaigns)" if len(campaigns) > 1 else ""))
                note("creative.rejected", Urgency.HIGH if campaigns else Urgency.MEDIUM, message, agent, row.content_version_synced,
                     approval, episode, sales_agent_id=agent, rejection_reason=reason,
                     campaign_id=campaigns[0].campaign_id if campaigns else None,
                     brand_agent_id=campaigns[0].brand_agent_id if campaigns else None,
                     action_required="Fix the creative and sync it again, or assign another creative to the campaign")
    if approvals:
        # One per change, like sync_completed: ten agents approving in one answer are one piece of
        # news (and one record, not ten, for every delivery of a ten-agent sync).
        agents = [a for a, _, _ in approvals]
        id_parts = approvals[0] if len(approvals) == 1 else (approvals,)  # one agent: the id it always had
        note("creative.approved", Urgency.LOW, f"Creative {creative} approved by {_names(agents, names)}", *id_parts,
             sales_agent_id=agents[0] if len(agents) == 1 else None)
    return out


def campaign_notifications(account_id: str, campaign_id: str, brand_agent_id: str | None, name: str,
                           before: CampaignHealth | None, after: CampaignHealth, *, since: datetime | None,
                           now: datetime) -> list[Notification]:
    """Health transitions of a campaign (`before`/`after`: its health records). `since`: when the previous health was computed, which makes one
    episode, and so one notification, of each transition."""
    was = before.status if before is not None else HealthStatus.HEALTHY
    out: list[Notification] = []

    def note(kind: str, urgency: Urgency, message: str, action: str, *id_parts: Any) -> None:
        out.append(Notification(notification_id=notification_id(kind, account_id, campaign_id, since, *id_parts),
                                account_id=account_id, type=kind, urgency=urgency, message=message, action_required=action,
                                campaign_id=campaign_id, brand_agent_id=brand_agent_id, created_at=now))

    if after.status in (HealthStatus.WARNING, HealthStatus.CRITICAL) and after.status != was:
        issue = after.last_sync_issue or "sync issues"
        note("campaign.creative_sync_unhealthy", Urgency.HIGH if after.status is HealthStatus.CRITICAL else Urgency.MEDIUM,
             f"Campaign {name} is {after.status.value.lower()}: {issue}", "Review sync failures before campaign launch",
             after.status.value)
    if after.status is HealthStatus.HEALTHY and before is not None and was is not HealthStatus.HEALTHY:
        # Told once it is true: every active tactic synced, each with an approved creative (a
        # syncing campaign is not healthy yet); "again" only after a problem.
        again = " again" if was in (HealthStatus.WARNING, HealthStatus.CRITICAL) else ""
        note("campaign.healthy", Urgency.LOW, f"Campaign {name} is healthy{again}: {after.synced_tactics} of "
             f"{after.total_tactics} tactics synced, {after.approved_creatives} of {after.total_creatives} creatives "
             "approved", "None")
    previously_missing = set(before.missing_tactics) if before is not None else set()
    newly_missing = [t for t in after.missing_tactics if t not in previously_missing]
    if newly_missing:
        note("campaign.missing_creatives", Urgency.HIGH, f"Campaign {name}: {_plural(len(newly_missing), 'active tactic')} "
             f"without a compatible creative ({', '.join(public_all(newly_missing))})",
             "Assign a creative in a format these sales agents accept", sorted(newly_missing))
    return out


def agent_unavailable(account_id: str, agent_id: str, name: str, error: str, available_since: datetime,
                      now: datetime) -> Notification:
    """A sales agent that stopped answering (discovery failed): one notification per outage."""
    return Notification(notification_id=notification_id("sales_agent.unavailable", account_id, agent_id, available_since),
                        account_id=account_id, type="sales_agent.unavailable", urgency=Urgency.HIGH,
                        message=f"Sales agent {name} is unavailable: {error}", sales_agent_id=agent_id,
                        action_required="Check the agent's address and credentials; syncs resume when it answers",
                        created_at=now)
