"""Retention by age (streams.retention) over the time-ordered indexes of the tables that age: what
is expired is the front of each account's index, read up to the cutoff and nothing after it
(a controlled clock; on the broker: tests/integration/test_retention.py)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.library.logic import creative_key
from streams.library.store import IdempotencyIndex
from streams.notify import inbox
from streams.retention import expired_range
from tests.support import MemoryTable
from topics.events import IdempotencyRecord, Notification, Urgency

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def expired(table: MemoryTable, prefix: str, cutoff: datetime) -> list:
    return [entry for _, entry in table.data.index_range(0, *expired_range(prefix, cutoff), False)]


def test_notifications_older_than_the_cutoff_are_the_front_of_their_accounts_index():
    table = MemoryTable("notifications")
    for account, seconds in (("acct", 1), ("acct", 2), ("acct", 3), ("acct", 50), ("other", 1)):
        note = Notification(notification_id=f"n{seconds:03d}", account_id=account, type="creative.approved",
                            urgency=Urgency.LOW, message="m", created_at=T0 + timedelta(seconds=seconds))
        table.put(inbox.row_key(account, note.notification_id), inbox.received(None, note))
    gone = expired(table, inbox.prefix("acct"), T0 + timedelta(seconds=3))
    assert [e.notification_id for e in gone] == ["n001", "n002"]  # created exactly at the cutoff: kept
    assert [e.notification_id for e in expired(table, inbox.prefix("other"), T0 + timedelta(seconds=3))] == ["n001"]


def test_idempotency_keys_past_their_replay_window_are_found_by_recording_time():
    table = MemoryTable("idempotency")

    def record(account: str, key: str, hours: float) -> None:
        table.put(creative_key(account, key), IdempotencyRecord(
            account_id=account, idempotency_key=key, payload_hash="h", task_id="t", response_json="{}", source_offset=0,
            recorded_at=T0 + timedelta(hours=hours)))
    for key, hours in (("late-key-0001", 30), ("early-key-0001", 1), ("mid-key-00001", 20)):
        record("acct", key, hours)
    record("other", "early-key-0001", 1)
    window = timedelta(hours=24)
    now = T0 + timedelta(hours=44.5)  # mid (20 h) and early (1 h) are older than 24 h; late (30 h) is not
    assert expired(table, IdempotencyIndex.prefix("acct"), now - window) == ["early-key-0001", "mid-key-00001"]
    table.put(creative_key("acct", "early-key-0001"), None)
    assert expired(table, IdempotencyIndex.prefix("acct"), now - window) == ["mid-key-00001"]
    assert table.data.account_counts(0, "acct") == {"keys": 2} and table.data.account_counts(0, "other") == {"keys": 1}


def test_archived_creatives_past_the_status_retention_are_found_by_archiving_time():
    from streams.status.store import ArchivedIndex
    from topics.events import ArchivedCreative

    table = MemoryTable("archived_creatives")
    for account, creative, days in (("acct", "late", 20), ("acct", "early", 1), ("acct", "mid", 10), ("other", "early", 1)):
        table.put(creative_key(account, creative), ArchivedCreative(account_id=account, creative_id=creative,
                                                                    archived_at=T0 + timedelta(days=days)))
    cutoff = T0 + timedelta(days=45) - timedelta(days=30)  # a 30-day retention, 45 days on: early and mid
    assert expired(table, ArchivedIndex.prefix("acct"), cutoff) == ["early", "mid"]
    table.put(creative_key("acct", "mid"), None)  # brought back: no longer archived
    assert expired(table, ArchivedIndex.prefix("acct"), cutoff) == ["early"]
    assert expired(table, ArchivedIndex.prefix("other"), cutoff) == ["early"]
