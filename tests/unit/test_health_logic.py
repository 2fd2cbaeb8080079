"""Campaign health rules, table-driven: synced tactics, approved creatives, failures in the
window (per pair, not per retry), and healthy / warning / critical with the reason first."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.health.logic import (HealthRules, RecentOutcomes, Tactic, campaign_health, lost_last_approval, tactic_activity,
                                  tactic_health)
from topics.events import HealthStatus, SyncState, SyncStatus

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def row(creative: str, agent: str, state: str, approval: str | None = None, minutes_ago: float = 1) -> SyncStatus:
    at = NOW - timedelta(minutes=minutes_ago)
    return SyncStatus(account_id="acct", creative_id=creative, sales_agent_id=agent, sync_status=SyncState(state.upper()),
                      approval_status=approval, last_sync_at=at if state in ("synced", "failed") else None, updated_at=at)


def tactics(*agents: str, paused: tuple[str, ...] = ()) -> list[Tactic]:
    return [Tactic(f"t-{a}", f"Tactic {a}", a, "paused" if a in paused else "active") for a in agents]


# Shorthand: per creative, per agent: "A" approved, "R" rejected, "P" pending review,
# "F" failed, "S" skipped, "Q" queued (syncing), "-" no row yet.
STATES = {"A": ("synced", "approved"), "R": ("synced", "rejected"), "P": ("synced", "pending_review"),
          "F": ("failed", None), "S": ("skipped", None), "Q": ("syncing", None)}


def creatives(table: dict[str, str], agents: str, *, review_minutes_ago: float = 1) -> dict[str, list[SyncStatus]]:
    out = {}
    for creative, states in table.items():
        out[creative] = [row(creative, agent, *STATES[s], minutes_ago=review_minutes_ago)
                         for agent, s in zip(agents, states) if s != "-"]
    return out


def outcomes(failed: int, ok: int, minutes_ago: float = 1) -> RecentOutcomes:
    recent = RecentOutcomes()
    for i in range(failed + ok):
        recent = recent.add(f"c{i}", "x", NOW - timedelta(minutes=minutes_ago), failed=i < failed)
    return recent


CASES = [
    # (name, agents, table, recent, expected status, synced tactics, approved creatives, first reason)
    ("all approved", "ab", {"c1": "AA", "c2": "AA"}, outcomes(0, 4), HealthStatus.HEALTHY, 2, 2, None),
    ("nothing synced yet is syncing, not healthy", "abcd", {"c1": "QQ--", "c2": "----"}, outcomes(0, 0), HealthStatus.SYNCING,
     0, 0, "syncing: 0 of 4 tactics synced, 0 of 2 creatives approved"),
    ("reviews just started: synced, nothing approved yet", "ab", {"c1": "PP", "c2": "PQ"}, outcomes(0, 3),
     HealthStatus.SYNCING, 1, 0, "syncing: 1 of 2 tactics synced, 0 of 2 creatives approved"),
    ("a tactic with an approved creative and one in review is ready", "a", {"c1": "A", "c2": "P"}, outcomes(0, 2),
     HealthStatus.HEALTHY, 1, 1, None),
    ("a skipped agent is not a problem", "ab", {"c1": "AS", "c2": "AA"}, outcomes(0, 3), HealthStatus.HEALTHY, 2, 2, None),
    ("a failure is a warning", "ab", {"c1": "AF", "c2": "AA"}, outcomes(1, 3), HealthStatus.WARNING, 1, 2,
     "1 tactic has creative sync failures"),
    ("a rejection is a warning", "ab", {"c1": "AR", "c2": "AA"}, outcomes(0, 4), HealthStatus.WARNING, 2, 1,
     "1 creative rejected (by b)"),
    ("one creative rejected by two agents is one creative, both named", "abc", {"c1": "ARR", "c2": "AAA"}, outcomes(0, 6),
     HealthStatus.WARNING, 3, 1, "1 creative rejected (by b, c)"),
    ("a failure only in the window is a warning", "a", {"c1": "A"}, outcomes(1, 3), HealthStatus.WARNING, 1, 1,
     "1 sync failed in the last 15 minutes"),
    ("failures beyond the window are forgotten", "a", {"c1": "A"}, outcomes(3, 0, minutes_ago=30), HealthStatus.HEALTHY,
     1, 1, None),
    ("an active tactic with every creative rejected is critical", "ab", {"c1": "AR", "c2": "AR"}, outcomes(0, 4),
     HealthStatus.CRITICAL, 2, 0, "1 active tactic has every creative rejected (Tactic b)"),
    ("an active tactic with no compatible creative is critical", "ab", {"c1": "AS", "c2": "AS"}, outcomes(0, 2),
     HealthStatus.CRITICAL, 1, 2, "1 active tactic has no compatible creative (Tactic b)"),
    ("a paused tactic does not count", "ab", {"c1": "AS", "c2": "AS"}, outcomes(0, 2), HealthStatus.HEALTHY, 1, 2, None),
    ("most syncs failing is critical", "ab", {"c1": "FF", "c2": "FA"}, outcomes(3, 1), HealthStatus.CRITICAL, 0, 1,
     "3 of 4 syncs failed in the last 15 minutes"),
    ("too few pairs for a rate", "a", {"c1": "F"}, outcomes(1, 0), HealthStatus.WARNING, 0, 0,
     "1 tactic has creative sync failures"),
]


@pytest.mark.parametrize("name,agents,table,recent,status,synced,approved,reason", CASES, ids=[c[0] for c in CASES])
def test_health_rules(name, agents, table, recent, status, synced, approved, reason):
    paused = ("b",) if name == "a paused tactic does not count" else ()
    health = campaign_health(tactics(*agents, paused=paused), creatives(table, agents), recent, NOW)
    assert health.status is status
    assert (health.synced_tactics, health.approved_creatives) == (synced, approved)
    assert health.total_tactics == len(agents) - len(paused) and health.total_creatives == len(table)
    assert health.last_sync_issue == reason


def test_the_holiday_campaign_with_two_failing_agents_is_a_warning_with_the_briefs_counts():
    agents = "abcde"  # d and e fail every creative; 8 of 12 creatives approved, 4 still in review
    table = {f"c{i:02d}": ("AAAFF" if i < 8 else "PPPFF") for i in range(12)}
    recent = RecentOutcomes()
    for creative in table:
        for agent in agents:
            recent = recent.add(creative, agent, NOW - timedelta(minutes=2), failed=agent in "de")
    health = campaign_health(tactics(*agents), creatives(table, agents), recent, NOW)
    assert health.status is HealthStatus.WARNING
    assert (health.synced_tactics, health.total_tactics, health.approved_creatives, health.total_creatives) == (3, 5, 8, 12)
    assert health.last_sync_issue == "2 tactics have creative sync failures" and health.failures_in_window == 24


def test_rejecting_agents_are_named_by_their_display_names():
    health = campaign_health(tactics("a", "b"), creatives({"c1": "RR", "c2": "AA", "c3": "RA"}, "ab"), outcomes(0, 6), NOW,
                             agent_names={"a": "Daily News", "b": "Metro Daily"})
    assert health.reasons[0] == "2 creatives rejected (by Daily News, Metro Daily)"


def test_a_review_pending_too_long_is_a_warning():
    rules = HealthRules(review_overdue_after=timedelta(minutes=30))
    health = campaign_health(tactics("a"), creatives({"c1": "P"}, "a", review_minutes_ago=45), RecentOutcomes(), NOW, rules)
    assert health.status is HealthStatus.WARNING and health.last_sync_issue.startswith("reviews pending for over 30 minutes")


def test_a_retried_pair_is_one_failure_and_an_older_outcome_never_overwrites_a_newer_one():
    recent = RecentOutcomes()
    for minute in range(5):
        recent = recent.add("c1", "a", NOW - timedelta(minutes=10 - minute), failed=True)
    assert recent.failed_pairs() == 1
    recent = recent.add("c1", "a", NOW, failed=False).add("c1", "a", NOW - timedelta(minutes=1), failed=True)
    assert recent.failed_pairs() == 0


def test_losing_the_last_approved_creative_of_a_tactic_is_detected():
    tactic = Tactic("t", "T", "a")
    before = tactic_health(tactic, creatives({"c1": "A", "c2": "R"}, "a"))
    after = tactic_health(tactic, creatives({"c1": "R", "c2": "R"}, "a"))
    still = tactic_health(tactic, creatives({"c1": "A", "c2": "R", "c3": "R"}, "a"))
    assert lost_last_approval(before, after) and not lost_last_approval(before, still)


def test_tactic_activity_keeps_when_a_tactic_stopped_and_when_it_last_synced():
    live, paused = Tactic("t1", "Live", "a"), Tactic("t2", "Paused", "b", "paused")
    created = {"t1": NOW - timedelta(days=40), "t2": NOW - timedelta(days=40)}
    first = tactic_activity([live, Tactic("t2", "Paused", "b")], created, True, [], {"a": NOW - timedelta(days=1)}, NOW)
    assert [(r.active, r.last_active_at) for r in first] == [(True, None), (True, None)]
    later = NOW + timedelta(days=2)
    second = tactic_activity([live, paused], created, True, first, {}, later)
    assert [(r.active, r.last_active_at) for r in second] == [(True, None), (False, later)]
    assert second[0].last_synced_at == NOW - timedelta(days=1)  # kept when nothing newer came
    third = tactic_activity([live, paused], created, False, second, {}, later + timedelta(days=1))
    assert [(r.active, r.last_active_at) for r in third] == [(False, later + timedelta(days=1)), (False, later)]
