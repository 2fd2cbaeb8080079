"""Campaign health as pure functions: a campaign's active tactics, its assigned creatives' status
rows and the sync outcomes of a recent window in; counts, a status and the reasons out.

The rules (documented in the README, thresholds in HealthRules):
- a tactic is *synced* when it has compatible assigned creatives and every one of them is synced
  to its sales agent (a `skipped` row means incompatible; no row yet means pending);
- **critical**: an active tactic with no compatible assigned creative at all, or one whose
  compatible creatives were all rejected (nothing approved, nothing left to review); or, in
  the window, more than `critical_failure_rate` of the (creative, agent) pairs that had an
  outcome failed (given at least `min_pairs_for_rate` pairs);
- **warning**: any current failure or failure in the window, any rejection (counted in
  creatives, the agents named), or a review pending longer than `review_overdue_after`;
- **syncing**, with none of those: an active tactic whose creatives are not all delivered yet, or
  none of them approved yet (a review in its first `review_overdue_after` is not a problem, but a
  tactic with nothing approved cannot run: the campaign is not healthy yet);
- **healthy** otherwise: every active tactic synced, each with an approved creative.

No I/O and no clock: `now` is passed in. The window's outcomes are an aggregate with the
initial/add/result shape (see RecentOutcomes).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from topics.events import HealthStatus, SyncState, SyncStatus, TacticActivityRecord


@dataclass(frozen=True)
class HealthRules:
    window: timedelta = timedelta(minutes=15)
    critical_failure_rate: float = 0.5
    min_pairs_for_rate: int = 4
    review_overdue_after: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Tactic:
    tactic_id: str
    name: str
    sales_agent_id: str
    status: str = "active"

    @property
    def active(self) -> bool:
        return self.status == "active"


# -- the window ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecentOutcomes:
    """Per (creative, agent) pair, the time of its last outcome in the window and whether it
    failed: a pair retried ten times is one failure, not ten."""

    pairs: Mapping[tuple[str, str], tuple[datetime, bool]] = field(default_factory=dict)

    def add(self, creative_id: str, agent_id: str, at: datetime, failed: bool) -> RecentOutcomes:
        current = self.pairs.get((creative_id, agent_id))
        if current is not None and current[0] > at:
            return self  # an older outcome than the one kept
        return replace(self, pairs={**self.pairs, (creative_id, agent_id): (at, failed)})

    def within(self, now: datetime, window: timedelta) -> RecentOutcomes:
        start = now - window
        return RecentOutcomes({k: v for k, v in self.pairs.items() if v[0] >= start})

    def failed_pairs(self) -> int:
        return sum(1 for _, failed in self.pairs.values() if failed)


# -- the health ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TacticHealth:
    tactic: Tactic
    compatible: int  # assigned creatives its agent can run (not skipped)
    synced: int
    approved: int
    rejected: int
    failed: int
    reviewing_since: datetime | None  # oldest review still pending

    @property
    def is_synced(self) -> bool:
        return self.compatible > 0 and self.synced == self.compatible

    @property
    def missing_creatives(self) -> bool:
        return self.compatible == 0

    @property
    def all_rejected(self) -> bool:
        return self.compatible > 0 and self.rejected == self.compatible

    @property
    def ready(self) -> bool:
        """Every compatible creative delivered, and one of them approved: the tactic can run."""
        return self.is_synced and self.approved > 0


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    synced_tactics: int
    total_tactics: int
    approved_creatives: int
    total_creatives: int
    failures_in_window: int
    last_sync_issue: str | None
    reasons: list[str]
    tactics: list[TacticHealth]


def _row_for(rows: Iterable[SyncStatus], agent_id: str) -> SyncStatus | None:
    return next((r for r in rows if r.sales_agent_id == agent_id), None)


def tactic_health(tactic: Tactic, creatives: Mapping[str, Sequence[SyncStatus]]) -> TacticHealth:
    compatible = synced = approved = rejected = failed = 0
    reviewing_since: datetime | None = None
    for rows in creatives.values():
        row = _row_for(rows, tactic.sales_agent_id)
        if row is not None and row.sync_status is SyncState.SKIPPED:
            continue
        compatible += 1
        if row is None:
            continue  # assigned, not yet queued for this agent: pending
        if row.sync_status is SyncState.FAILED:
            failed += 1
        if row.sync_status is SyncState.SYNCED:
            synced += 1
            if row.approval_status == "approved":
                approved += 1
            elif row.approval_status in ("rejected", "suspended"):
                rejected += 1
            else:
                since = row.last_sync_at or row.updated_at
                reviewing_since = since if reviewing_since is None else min(reviewing_since, since)
    return TacticHealth(tactic, compatible, synced, approved, rejected, failed, reviewing_since)


def _creative_approved(rows: Sequence[SyncStatus], agents: set[str]) -> bool:
    """Approved by at least one of the campaign's agents and rejected by none."""
    mine = [r for r in rows if r.sales_agent_id in agents and r.sync_status is SyncState.SYNCED]
    return any(r.approval_status == "approved" for r in mine) and not any(
        r.approval_status in ("rejected", "suspended") for r in mine)


def _rejected_by(row: SyncStatus, agents: set[str]) -> bool:
    return row.sales_agent_id in agents and row.sync_status is SyncState.SYNCED and row.approval_status in ("rejected", "suspended")


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def campaign_health(tactics: Sequence[Tactic], creatives: Mapping[str, Sequence[SyncStatus]], recent: RecentOutcomes,
                    now: datetime, rules: HealthRules = HealthRules(), agent_names: Mapping[str, str] | None = None) -> Health:
    """The health of one campaign: `creatives` maps each assigned creative to its status rows;
    `agent_names`: sales agents' display names, for the reasons (else their ids)."""
    active = [t for t in tactics if t.active]
    per_tactic = [tactic_health(t, creatives) for t in active]
    agents = {t.sales_agent_id for t in active}
    window = recent.within(now, rules.window)
    failures = window.failed_pairs()
    pairs = len(window.pairs)
    rejecting = sorted({r.sales_agent_id for rows in creatives.values() for r in rows if _rejected_by(r, agents)})
    rejections = sum(1 for rows in creatives.values() if any(_rejected_by(r, agents) for r in rows))

    critical, warning = [], []
    missing = [h for h in per_tactic if h.missing_creatives]
    if missing:
        critical.append(f"{_plural(len(missing), 'active tactic has', 'active tactics have')} no compatible creative"
                        f" ({', '.join(h.tactic.name for h in missing)})")
    all_rejected = [h for h in per_tactic if h.all_rejected]
    if all_rejected:
        critical.append(f"{_plural(len(all_rejected), 'active tactic has', 'active tactics have')} every creative rejected"
                        f" ({', '.join(h.tactic.name for h in all_rejected)})")
    if pairs >= rules.min_pairs_for_rate and failures / pairs > rules.critical_failure_rate:
        critical.append(f"{failures} of {pairs} syncs failed in the last {int(rules.window.total_seconds() // 60)} minutes")
    failing = [h for h in per_tactic if h.failed]
    if failing:
        warning.append(f"{_plural(len(failing), 'tactic has', 'tactics have')} creative sync failures")
    elif failures:
        warning.append(f"{_plural(failures, 'sync', 'syncs')} failed in the last {int(rules.window.total_seconds() // 60)} minutes")
    if rejections:
        names = ", ".join((agent_names or {}).get(a, a) for a in rejecting)
        warning.append(f"{_plural(rejections, 'creative', 'creatives')} rejected (by {names})")
    overdue = [h for h in per_tactic if h.reviewing_since is not None and now - h.reviewing_since > rules.review_overdue_after]
    if overdue:
        warning.append(f"reviews pending for over {int(rules.review_overdue_after.total_seconds() // 60)} minutes at "
                       f"{_plural(len(overdue), 'tactic', 'tactics')}")

    synced_tactics = sum(1 for h in per_tactic if h.is_synced)
    approved = sum(1 for rows in creatives.values() if _creative_approved(rows, agents))
    syncing = [] if critical or warning or all(h.ready for h in per_tactic) else [
        f"syncing: {synced_tactics} of {len(active)} tactics synced, {approved} of {len(creatives)} creatives approved"]
    status = (HealthStatus.CRITICAL if critical else HealthStatus.WARNING if warning
              else HealthStatus.SYNCING if syncing else HealthStatus.HEALTHY)
    reasons = critical + warning + syncing
    return Health(
        status=status, synced_tactics=synced_tactics, total_tactics=len(active), approved_creatives=approved,
        total_creatives=len(creatives), failures_in_window=failures, last_sync_issue=reasons[0] if reasons else None,
        reasons=reasons, tactics=per_tactic)


def lost_last_approval(before: TacticHealth, after: TacticHealth) -> bool:
    """A rejection that leaves an active tactic without any approved creative: high urgency."""
    return before.approved > 0 and after.approved == 0 and after.rejected > before.rejected


# -- activity (for the 30-day auto-detection of sales agents) -------------------------------------
def tactic_activity(tactics: Sequence[Tactic], created: Mapping[str, datetime | None], campaign_active: bool,
                    previous: Sequence[TacticActivityRecord], last_synced: Mapping[str, datetime], now: datetime
                    ) -> list[TacticActivityRecord]:
    """When each tactic was last active and last synced. Active means active now (in an active
    campaign); a tactic that stops keeps the time it stopped, observed `now`; one never active has
    none. `last_synced` holds, per sales agent, the latest delivery of the campaign's creatives."""
    before = {r.tactic_id: r for r in previous}
    out = []
    for tactic in tactics:
        was = before.get(tactic.tactic_id)
        active = tactic.active and campaign_active
        if active:
            stopped = None
        elif was is not None and was.active:
            stopped = now
        else:
            stopped = was.last_active_at if was is not None else None
        synced = [t for t in (was.last_synced_at if was else None, last_synced.get(tactic.sales_agent_id)) if t is not None]
        out.append(TacticActivityRecord(tactic_id=tactic.tactic_id, sales_agent_id=tactic.sales_agent_id, active=active,
                                        created_at=created.get(tactic.tactic_id), last_active_at=stopped,
                                        last_synced_at=max(synced) if synced else None))
    return out
