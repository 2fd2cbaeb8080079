"""Where each creative stands with each sales agent, as pure functions: sync outcomes, approval
decisions and content changes in, the new per-agent rows (and the re-syncs a content change
needs) out. Transitions are checked: an older content version or an older observation never
overwrites a newer state, so late and redelivered events are harmless.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streams.sync.logic import job_id_for
from topics.events import (
    ApprovalEvent,
    ApprovalSource,
    ArchivedCreative,
    ChangeKind,
    CreativeChanged,
    CreativeSyncState,
    HeldDecision,
    SyncItem,
    SyncOutcome,
    SyncResult,
    SyncState,
    SyncStatus,
    SyncTrigger,
)

_STATE_OF_OUTCOME = {SyncOutcome.SYNCING: SyncState.SYNCING, SyncOutcome.SYNCED: SyncState.SYNCED,
                     SyncOutcome.FAILED: SyncState.FAILED, SyncOutcome.SKIPPED: SyncState.SKIPPED}
#: approval statuses (AdCP creative-status) a sales agent may report
APPROVAL_STATUSES = frozenset({"processing", "pending_review", "approved", "suspended", "rejected", "archived"})
#: How far ahead of ours an agent's clock may run and its times still be believed. Real agents'
#: clocks run minutes off; a time further ahead would order every later decision before it and
#: freeze the row (an attacker's trick), so it is not used for ordering.
MAX_AGENT_CLOCK_AHEAD = timedelta(minutes=10)
#: How long a decision that came before its agent's row is held for it (the row follows within
#: seconds: a result still on its way), and how many a creative holds at most.
HOLD_DECISION_FOR = timedelta(hours=1)
MAX_HELD_DECISIONS = 16


def trusted_agent_time(agent_time: datetime | None, observed_at: datetime) -> datetime | None:
    """An agent's own time of a decision, if it is not implausibly far in the future."""
    return agent_time if agent_time is not None and agent_time <= observed_at + MAX_AGENT_CLOCK_AHEAD else None


def state_key(account_id: str, creative_id: str) -> str:
    return f"{account_id}/{creative_id}"


def empty_state(account_id: str, creative_id: str) -> CreativeSyncState:
    return CreativeSyncState(account_id=account_id, creative_id=creative_id)


@dataclass
class StatusChange:
    state: CreativeSyncState
    rows: list[SyncStatus] = field(default_factory=list)  # rows that changed: publish them
    resyncs: list[tuple[str, SyncItem]] = field(default_factory=list)  # (sales agent, job) to queue
    #: seconds from a delivery to the agent's first decision on it (approved, rejected), for the metric
    decided_after_s: list[float] = field(default_factory=list)


def _row(state: CreativeSyncState, agent_id: str) -> SyncStatus | None:
    return next((r for r in state.rows if r.sales_agent_id == agent_id), None)


def _with_row(state: CreativeSyncState, row: SyncStatus) -> CreativeSyncState:
    rows = [r for r in state.rows if r.sales_agent_id != row.sales_agent_id] + [row]
    return state.model_copy(update={"rows": sorted(rows, key=lambda r: r.sales_agent_id)})


def apply_result(state: CreativeSyncState, result: SyncResult) -> StatusChange:
    """A delivery outcome (or a queued / skipped decision) for one agent."""
    return apply_results(state, [result])


def apply_results(state: CreativeSyncState, results: Iterable[SyncResult]) -> StatusChange:
    """Outcomes about one creative, in order: the state is rebuilt once, not once per result (the
    ten agents' answers about a creative come together). A decision held for an agent whose row
    this creates is applied then."""
    rows = {r.sales_agent_id: r for r in state.rows}
    changed = []
    for result in results:
        updated = _row_after(rows.get(result.sales_agent_id), result)
        if updated is not None:
            rows[result.sales_agent_id] = updated
            changed.append(updated)
    if not changed:
        return StatusChange(state)
    out = StatusChange(state.model_copy(update={"rows": sorted(rows.values(), key=lambda r: r.sales_agent_id)}), changed)
    due = [held for held in state.held_decisions if held.sales_agent_id in rows]
    if due:
        out.state = out.state.model_copy(update={"held_decisions": [h for h in state.held_decisions if h not in due]})
        for held in due:
            decided = _apply_decision(out.state, held)
            if decided.rows:
                out.state = decided.state
                out.rows = [r for r in out.rows if r.sales_agent_id != held.sales_agent_id] + decided.rows
                out.decided_after_s += decided.decided_after_s
    return out


def _row_after(row: SyncStatus | None, result: SyncResult) -> SyncStatus | None:
    """The agent's row after `result`, or None when it changes nothing."""
    target = _STATE_OF_OUTCOME.get(result.outcome)
    if target is None:
        return None
    if row is not None and result.outcome is not SyncOutcome.SKIPPED:
        synced = row.content_version_synced or 0
        if result.content_version < synced or (result.content_version == synced and row.sync_status is SyncState.SYNCED
                                               and target is not SyncState.SYNCED):
            return None  # about an older version than the agent already has
        if (row.sync_updated_at or row.updated_at) > result.occurred_at and row.sync_status is not SyncState.SKIPPED:
            return None  # older news than the row's sync state
    attempts = (row.attempts if row else 0) + (1 if target in (SyncState.SYNCED, SyncState.FAILED) else 0)
    new_version = result.content_version if target is SyncState.SYNCED else (row.content_version_synced if row else None)
    approval = row.approval_status if row else None
    rejection = row.rejection_reason if row else None
    # A review decision observed after this answer was given (a poll that crossed the answer on its
    # way here) is newer news than the answer's status: it stays.
    decided_since = row is not None and row.updated_at > result.occurred_at and row.approval_status is not None
    if target is SyncState.SYNCED and not decided_since:
        # The agent reviews every new version again; a status in its answer is its first word.
        approval = result.approval_status if result.approval_status in APPROVAL_STATUSES else "pending_review"
        rejection = result.reason if approval == "rejected" else None
    updated = SyncStatus(
        account_id=result.account_id, creative_id=result.creative_id, sales_agent_id=result.sales_agent_id,
        sync_status=target, approval_status=approval if target is not SyncState.SKIPPED else None,
        rejection_reason=rejection, skip_reason=result.reason if target is SyncState.SKIPPED else None,
        attempts=0 if target is SyncState.SKIPPED else attempts,
        last_sync_at=result.occurred_at if target in (SyncState.SYNCED, SyncState.FAILED) else (row.last_sync_at if row else None),
        platform_creative_id=result.platform_creative_id or (row.platform_creative_id if row else None),
        content_version_synced=new_version, sync_updated_at=result.occurred_at,
        updated_at=max(row.updated_at, result.occurred_at) if decided_since else result.occurred_at,
        agent_updated_at=row.agent_updated_at if row else None,
        last_error=result.reason if target is SyncState.FAILED else (row.last_error if row and target is SyncState.SYNCING else None),
    )
    # The same answer again (a redelivery) changes nothing; the timestamps tell most answers apart
    # before the whole rows are compared.
    return None if row is not None and row.updated_at == updated.updated_at and row == updated else updated


def apply_approval(state: CreativeSyncState, event: ApprovalEvent) -> StatusChange:
    """A sales agent's review decision (webhook, poll or task webhook).

    Observations are ordered by our own sequence, never by comparing an agent's clock with ours
    (real agents' clocks run minutes off): one made before we recorded the delivery it would
    answer (a poll started, a webhook received earlier) is older news; and an agent's own time
    is compared only with the times the same agent gave before. (A poll is observed when it
    starts, a webhook when it is received.)"""
    status = event.status.lower()
    if status not in APPROVAL_STATUSES:
        return StatusChange(state)
    decision = HeldDecision(sales_agent_id=event.sales_agent_id, status=status, rejection_reason=event.rejection_reason,
                            observed_at=event.observed_at, agent_updated_at=event.agent_updated_at)
    if _row(state, event.sales_agent_id) is None and event.source is not ApprovalSource.SWEEP:
        # About a delivery whose result has not reached us yet (the agent's decision and our
        # result travel on two topics; a poll finds it approved a second after the call): held
        # for the row, or it would be lost, and the agent, asked no more, would stay pending here
        # for ever. (A sweep's decision may be about a creative never delivered there: not held.)
        return StatusChange(_hold(state, decision))
    return _apply_decision(state, decision)


def _hold(state: CreativeSyncState, decision: HeldDecision) -> CreativeSyncState:
    """`state` holding `decision` (the newest observed per agent; the newest MAX_HELD_DECISIONS,
    none older than HOLD_DECISION_FOR before it)."""
    same = next((h for h in state.held_decisions if h.sales_agent_id == decision.sales_agent_id), None)
    if same is not None and same.observed_at >= decision.observed_at:
        return state
    kept = [h for h in state.held_decisions if h is not same and h.observed_at >= decision.observed_at - HOLD_DECISION_FOR]
    kept = sorted([*kept, decision], key=lambda h: h.observed_at)[-MAX_HELD_DECISIONS:]
    return state.model_copy(update={"held_decisions": kept})


def _apply_decision(state: CreativeSyncState, decision: HeldDecision) -> StatusChange:
    row = _row(state, decision.sales_agent_id)
    status = decision.status
    if row is None or row.sync_status is SyncState.SKIPPED:
        return StatusChange(state)
    if decision.observed_at < row.updated_at:
        return StatusChange(state)  # seen before what the row already says (our delivery's answer, say)
    agent_time = trusted_agent_time(decision.agent_updated_at, decision.observed_at)
    if agent_time is not None and row.agent_updated_at is not None and agent_time < row.agent_updated_at:
        return StatusChange(state)  # the agent itself says this came before what we know
    if row.approval_status == status and row.rejection_reason == decision.rejection_reason:
        if not _same_word_about_a_new_version(row, agent_time):
            return StatusChange(state)  # nothing new
    updated = row.model_copy(update={"approval_status": status, "updated_at": max(row.updated_at, decision.observed_at),
                                     "agent_updated_at": agent_time or row.agent_updated_at,
                                     "rejection_reason": decision.rejection_reason if status == "rejected" else None})
    decided = (row.approval_status in (None, "processing", "pending_review") and status in ("approved", "rejected")
               and row.last_sync_at is not None)
    latency = [max(0.0, (decision.observed_at - row.last_sync_at).total_seconds())] if decided else []
    return StatusChange(_with_row(state, updated), [updated], decided_after_s=latency)


def _same_word_about_a_new_version(row: SyncStatus, agent_time: datetime | None) -> bool:
    """Whether a decision that repeats the row's status is the agent's word on the version being
    delivered, not the old one's again: the row is re-syncing (its status is the old version's) and
    the agent dates the decision after the one the row holds (or gives no date). Recorded, it
    keeps the delivery's answer, arriving after it on the other topic, from replacing it with its
    "pending_review"."""
    if row.sync_status not in (SyncState.PENDING, SyncState.SYNCING):
        return False
    return agent_time is None or row.agent_updated_at is None or agent_time > row.agent_updated_at


def apply_change(state: CreativeSyncState, change: CreativeChanged, now: datetime) -> StatusChange:
    """A library change: a content change re-syncs the creative wherever it is synced or on its
    way; a metadata-only change re-syncs nowhere."""
    if change.content_version <= state.content_version or not state.rows:
        # Older or redelivered news (its re-syncs were queued the first time), or a creative synced
        # nowhere: nothing to do or remember.
        return StatusChange(state)
    state = state.model_copy(update={"content_version": change.content_version, "creative_json": None})
    if change.change is not ChangeKind.CONTENT:
        return StatusChange(state)
    out = StatusChange(state)
    for row in where_synced(state.rows):
        if (row.content_version_synced or 0) >= change.content_version:
            continue
        out.resyncs.append((row.sales_agent_id, SyncItem(
            job_id=job_id_for(SyncTrigger.CONTENT_CHANGE.value, change.account_id, change.creative_id,
                              change.content_version, row.sales_agent_id),
            creative_id=change.creative_id, content_version=change.content_version, creative_json=change.creative_json)))
        pending = row.model_copy(update={"sync_status": SyncState.PENDING, "sync_updated_at": now, "updated_at": now})
        out.state = _with_row(out.state, pending)
        out.rows.append(pending)
    return out


def archive_mark(change: CreativeChanged, synced: bool, marked: ArchivedCreative | None) -> ArchivedCreative | None:
    """What the archived_creatives table holds for a creative after a library `change`: when it was
    archived (only a creative with status rows: `synced`; a redelivered archiving keeps the first
    time), and nothing once a change brings it back (any change with another status)."""
    if change.status != "archived":
        return None
    if marked is not None or not synced:
        return marked
    return ArchivedCreative(account_id=change.account_id, creative_id=change.creative_id, archived_at=change.updated_at)


def newly_rejected(before: CreativeSyncState | None, after: CreativeSyncState) -> bool:
    """Whether some agent's row of the creative went to rejected or suspended."""
    old = {r.sales_agent_id: r.approval_status for r in (before.rows if before is not None else [])}
    return any(r.approval_status in ("rejected", "suspended") and old.get(r.sales_agent_id) != r.approval_status
               for r in after.rows)


def removed_before(agents: Iterable[Any], cutoff: datetime) -> dict[str, datetime]:
    """The sales agents (registry records) removed before `cutoff`, with when: their status rows have
    outlived the status retention (streams.status.agent's sweep drops them)."""
    return {a.sales_agent_id: a.updated_at for a in agents if a.deleted and a.updated_at < cutoff}


def without_agents(state: CreativeSyncState, agent_ids: frozenset[str]) -> CreativeSyncState | None:
    """`state` without the rows (and held decisions) of `agent_ids`: the same object when it has
    none of them, None when nothing is left (the creative's state is then removed: a tombstone)."""
    kept = [r for r in state.rows if r.sales_agent_id not in agent_ids]
    held = [h for h in state.held_decisions if h.sales_agent_id not in agent_ids]
    if len(kept) == len(state.rows) and len(held) == len(state.held_decisions):
        return state
    return state.model_copy(update={"rows": kept, "held_decisions": held}) if kept or held else None


def where_synced(rows: Iterable[SyncStatus]) -> list[SyncStatus]:
    """The agents that have (some version of) the creative, or are about to (queued or being sent:
    the job on its way carries the version it was queued with): they get every new version."""
    return [r for r in rows if r.sync_status is not SyncState.SKIPPED
            and (r.content_version_synced is not None or r.sync_status in (SyncState.PENDING, SyncState.SYNCING))]


def summary(rows: Iterable[SyncStatus]) -> dict[str, int]:
    """Counts per creative for get_creative_sync_status."""
    counts = {"approved": 0, "pending": 0, "rejected": 0, "failed": 0, "skipped": 0}
    for row in rows:
        if row.sync_status is SyncState.SKIPPED:
            counts["skipped"] += 1
        elif row.sync_status is SyncState.FAILED:
            counts["failed"] += 1
        elif row.approval_status == "approved":
            counts["approved"] += 1
        elif row.approval_status in ("rejected", "suspended"):
            counts["rejected"] += 1
        else:
            counts["pending"] += 1
    return counts
