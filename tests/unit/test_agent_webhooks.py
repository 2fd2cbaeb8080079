"""Sales agents' webhooks as pure functions: the legacy HMAC check (forged, unsigned, stale) and
the review decisions a creative.status_changed or task webhook carries."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.agent_webhooks import NotItsAccount, approvals_from, hmac_problem
from gateway.webhooks import hmac_headers
from streams.matching.logic import formats_of, match, traits_of
from creative_sync.samples import display_creative, video_creative
from topics.events import ApprovalSource

pytestmark = pytest.mark.unit
SECRET = "s" * 32
NOW = 1_800_000_000
BODY = json.dumps({"idempotency_key": "k1", "notification_type": "creative.status_changed", "account_id": "a",
                   "creative_id": "c", "transition": {"from": "pending_review", "to": "rejected",
                                                      "observed_at": "2026-11-22T10:00:00Z"},
                   "reason_code": "review_failure", "reason_detail": "Too small"}).encode()


def test_a_genuine_signature_holds():
    assert hmac_problem(SECRET, hmac_headers(SECRET, BODY, timestamp=NOW), BODY, NOW + 10) is None


@pytest.mark.parametrize("headers, body, now, problem", [
    ({}, BODY, NOW, "unsigned"),
    (hmac_headers("f" * 32, BODY, timestamp=NOW), BODY, NOW, "does not match"),
    (hmac_headers(SECRET, BODY, timestamp=NOW), BODY.replace(b"Too small", b"Fine"), NOW, "does not match"),
    (hmac_headers(SECRET, BODY, timestamp=NOW - 3600), BODY, NOW, "stale"),
    ({"X-AdCP-Signature": "md5=abc", "X-AdCP-Timestamp": str(NOW)}, BODY, NOW, "malformed"),
])
def test_forged_unsigned_stale_and_malformed_signatures_are_refused(headers, body, now, problem):
    assert problem in (hmac_problem(SECRET, headers, body, now) or "")


def test_a_status_change_becomes_one_approval_event_with_its_reason_and_time():
    received = datetime(2026, 11, 22, 10, 0, 30, tzinfo=UTC)
    [event] = approvals_from("agent-1", json.loads(BODY), received, account_id="a")
    assert (event.status, event.rejection_reason, event.source) == ("rejected", "Too small", ApprovalSource.WEBHOOK)
    assert event.agent_updated_at == datetime(2026, 11, 22, 10, tzinfo=UTC)
    later = datetime(2026, 11, 22, 11, tzinfo=UTC)
    assert event.event_id == approvals_from("agent-1", json.loads(BODY), later, account_id="a")[0].event_id  # per fire


def test_an_agent_speaks_only_for_its_own_account():
    received = datetime(2026, 11, 22, 10, 0, 30, tzinfo=UTC)
    with pytest.raises(NotItsAccount):
        approvals_from("b~agent-1", json.loads(BODY), received, account_id="b")  # BODY names account "a"


def test_a_decision_dated_in_the_future_is_refused_but_minutes_of_skew_are_not():
    five_minutes_behind = datetime(2026, 11, 22, 9, 55, tzinfo=UTC)  # the agent's clock runs 5 min ahead
    assert approvals_from("agent-1", json.loads(BODY), five_minutes_behind, account_id="a")
    with pytest.raises(ValueError, match="ahead"):
        approvals_from("agent-1", json.loads(BODY), datetime(2026, 11, 21, tzinfo=UTC), account_id="a")


def test_a_sync_creatives_task_webhook_becomes_one_event_per_reviewed_creative():
    payload = {"idempotency_key": "k2", "task_type": "sync_creatives", "status": "completed",
               "result": {"account": {"account_id": "a"}, "creatives": [
                   {"creative_id": "c1", "action": "created", "status": "approved"},
                   {"creative_id": "c2", "action": "created", "status": "rejected", "warnings": ["No alcohol ads"]},
                   {"creative_id": "c3", "action": "failed"}]}}
    events = approvals_from("agent-1", payload, datetime.now(UTC), account_id="a")
    assert [(e.creative_id, e.status, e.rejection_reason) for e in events] == [
        ("c1", "approved", None), ("c2", "rejected", "No alcohol ads")]
    assert {e.source for e in events} == {ApprovalSource.TASK_WEBHOOK}


@pytest.mark.parametrize("payload", [{}, {"idempotency_key": "k"}, {"idempotency_key": "k", "notification_type":
                                     "creative.status_changed", "account_id": "a"}])
def test_webhooks_we_do_not_understand_are_refused(payload):
    with pytest.raises(ValueError):
        approvals_from("agent-1", payload, datetime.now(UTC), account_id="a")


def test_declared_formats_win_over_discovered_ones_and_mime_patterns_are_kept():
    declared = formats_of("Video Co", ["video/*"], [{"format_id": {"agent_url": "x", "id": "display_300x250"}}])
    assert match(traits_of(video_creative("v")), declared).compatible
    assert not match(traits_of(display_creative("d")), declared).compatible
    discovered = formats_of("Display Co", [], [{"format_id": {"agent_url": "https://creative.adcontextprotocol.org",
                                                              "id": "display_300x250"}, "canonical": {"kind": "image"}}])
    assert match(traits_of(display_creative("d")), discovered).by == "format_id"
    assert match(traits_of(display_creative("w", width=728, height=90)), discovered).by == "format_kind"
