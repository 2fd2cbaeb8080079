"""Notifications: which transitions are worth one, their urgency, deterministic ids (the same
logical event twice is one id). Their queries: tests/unit/test_inbox.py."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.notify.logic import CampaignRef, agent_unavailable, campaign_notifications, creative_notifications
from topics.events import CampaignHealth, CreativeSyncState, HealthStatus, Notification, SyncState, SyncStatus, Urgency

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NAMES = {"ag": "Daily News", "vid": "StreamCo"}


def state(*rows: SyncStatus) -> CreativeSyncState:
    return CreativeSyncState(account_id="acct", creative_id="c1", content_version=1, rows=list(rows))


def row(agent: str, status: str, approval: str | None = None, minute: int = 0, **extra) -> SyncStatus:
    return SyncStatus(account_id="acct", creative_id="c1", sales_agent_id=agent, sync_status=SyncState(status),
                      approval_status=approval, updated_at=T0 + timedelta(minutes=minute), **extra)


def kinds(notes: list[Notification]) -> list[tuple[str, str]]:
    return [(n.type, n.urgency.value) for n in notes]


def test_a_sync_starting_completing_and_being_approved_is_told_once_each():
    queued = state(row("ag", "SYNCING", minute=1), row("vid", "SKIPPED", skip_reason="Display format not supported", minute=1))
    started = creative_notifications(None, queued, names=NAMES, now=T0)
    assert kinds(started) == [("creative.sync_started", "LOW"), ("creative.sync_failed", "LOW")]
    assert "Daily News" in started[0].message and started[1].rejection_reason == "Display format not supported"
    synced = state(row("ag", "SYNCED", "approved", minute=2, content_version_synced=1), queued.rows[1])
    done = creative_notifications(queued, synced, names=NAMES, now=T0)
    assert kinds(done) == [("creative.sync_completed", "LOW"), ("creative.approved", "LOW")]
    assert creative_notifications(synced, synced, names=NAMES, now=T0) == []


def test_approvals_in_one_change_are_one_notification_naming_the_agents():
    synced = state(row("ag", "SYNCED", "approved", minute=2, content_version_synced=1),
                   row("vid", "SYNCED", "approved", minute=2, content_version_synced=1))
    notes = [n for n in creative_notifications(None, synced, names=NAMES, now=T0) if n.type == "creative.approved"]
    assert len(notes) == 1 and notes[0].sales_agent_id is None
    assert all(NAMES[a] in notes[0].message for a in ("ag", "vid"))
    one = state(row("ag", "SYNCED", "approved", minute=2, content_version_synced=1))
    alone = [n for n in creative_notifications(None, one, names=NAMES, now=T0) if n.type == "creative.approved"]
    assert [n.sales_agent_id for n in alone] == ["ag"] and alone[0].notification_id != notes[0].notification_id


def test_the_same_transition_twice_has_the_same_id_and_a_new_episode_a_new_one():
    before, failed = state(row("ag", "SYNCING", minute=1)), state(row("ag", "FAILED", minute=2, last_error="timeout"))
    first = creative_notifications(before, failed, names=NAMES, now=T0)
    again = creative_notifications(before, failed, names=NAMES, now=T0 + timedelta(seconds=5))
    assert kinds(first) == [("creative.sync_failed", "MEDIUM")] and first[0].notification_id == again[0].notification_id
    later = creative_notifications(state(row("ag", "SYNCING", minute=7)), state(row("ag", "FAILED", minute=8)), names=NAMES, now=T0)
    assert later[0].notification_id != first[0].notification_id


def test_a_rejection_that_leaves_a_tactic_without_approved_creatives_is_high_urgency():
    approved = state(row("ag", "SYNCED", "approved", content_version_synced=1))
    rejected = state(row("ag", "SYNCED", "rejected", minute=3, content_version_synced=1, rejection_reason="Too small"))
    plain = creative_notifications(approved, rejected, names=NAMES, now=T0)
    assert kinds(plain) == [("creative.rejected", "MEDIUM")] and plain[0].rejection_reason == "Too small"
    lost = creative_notifications(approved, rejected, names=NAMES, now=T0,
                                  losing_last_approval=lambda agent: [CampaignRef("holiday", "ba-1", "Holiday Campaign")])
    assert kinds(lost) == [("creative.rejected", "HIGH")]
    assert (lost[0].campaign_id, lost[0].brand_agent_id) == ("holiday", "ba-1") and "no approved creative left" in lost[0].message


def health(status: HealthStatus, at: datetime, missing: list[str] | None = None) -> CampaignHealth:
    return CampaignHealth(campaign_id="holiday", account_id="acct", status=status, synced_tactics=3, total_tactics=5,
                          approved_creatives=8, total_creatives=12, last_sync_issue="2 tactics have creative sync failures",
                          window_start=at, window_end=at, computed_at=at, missing_tactics=missing or [])


def test_campaign_transitions_unhealthy_missing_creatives_and_healthy_again():
    first = health(HealthStatus.HEALTHY, T0)
    warned = campaign_notifications("acct", "holiday", "ba-1", "Holiday", first, health(HealthStatus.WARNING, T0, ["Mobile"]),
                                    since=first.computed_at, now=T0)
    assert kinds(warned) == [("campaign.creative_sync_unhealthy", "MEDIUM"), ("campaign.missing_creatives", "HIGH")]
    assert "2 tactics have creative sync failures" in warned[0].message
    still = campaign_notifications("acct", "holiday", "ba-1", "Holiday", health(HealthStatus.WARNING, T0, ["Mobile"]),
                                   health(HealthStatus.WARNING, T0, ["Mobile"]), since=T0, now=T0)
    assert still == []
    critical = campaign_notifications("acct", "holiday", "ba-1", "Holiday", health(HealthStatus.WARNING, T0),
                                      health(HealthStatus.CRITICAL, T0), since=T0, now=T0)
    assert kinds(critical) == [("campaign.creative_sync_unhealthy", "HIGH")]
    healed = campaign_notifications("acct", "holiday", "ba-1", "Holiday", health(HealthStatus.WARNING, T0),
                                    health(HealthStatus.HEALTHY, T0), since=T0 + timedelta(minutes=1), now=T0)
    assert kinds(healed) == [("campaign.healthy", "LOW")]
    assert campaign_notifications("acct", "holiday", None, "Holiday", None, health(HealthStatus.HEALTHY, T0), since=None, now=T0) == []
    assert "healthy again" in healed[0].message


def test_a_syncing_campaign_is_told_nothing_until_it_is_healthy_and_then_not_again():
    start = campaign_notifications("acct", "holiday", None, "Holiday", None, health(HealthStatus.SYNCING, T0), since=None, now=T0)
    assert start == []  # a new campaign still syncing: no news, no "healthy"
    ready = campaign_notifications("acct", "holiday", None, "Holiday", health(HealthStatus.SYNCING, T0),
                                   health(HealthStatus.HEALTHY, T0), since=T0, now=T0)
    assert kinds(ready) == [("campaign.healthy", "LOW")]
    assert ready[0].message == "Campaign Holiday is healthy: 3 of 5 tactics synced, 8 of 12 creatives approved"


def test_an_unavailable_agent_is_one_notification_per_outage():
    one = agent_unavailable("acct", "ag", "Daily News", "connection refused", T0, T0)
    two = agent_unavailable("acct", "ag", "Daily News", "connection refused", T0, T0 + timedelta(minutes=1))
    assert one.notification_id == two.notification_id and one.urgency is Urgency.HIGH
    assert agent_unavailable("acct", "ag", "Daily News", "x", T0 + timedelta(hours=1), T0).notification_id != one.notification_id
