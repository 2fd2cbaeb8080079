"""An account's notifications as their owner keeps them (streams.notify.inbox): rows first seen
with their flags, the newest-first index and unread counts the store derives, filtered cursor
pages over a changing inbox, campaign counts (retention: tests/unit/test_retention.py). The table is in memory
(tests.support.MemoryTable: what the memory store derives), no broker."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.notify import inbox
from streams.notify.store import NotificationStore
from tests.support import MemoryTable
from topics.events import Notification, NotificationOperation, StoredNotification, Urgency

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Inbox:
    """The notifications table (rows and what its store derives) and the owner's reads of it."""

    def __init__(self) -> None:
        self.table = MemoryTable("notifications")
        self.store = NotificationStore(self.table, lambda account_id: 0)
        self.rows = self.table.data
        self.index = self.table.data.derived.index

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return self.table.data.derived.counts

    def put(self, key: str, row: StoredNotification | None) -> None:
        self.table.put(key, row)

    def receive(self, note: Notification) -> None:
        current = self.store.get(note.account_id, note.notification_id)
        row = inbox.received(current, note)
        if row is not None:
            self.put(inbox.row_key(note.account_id, note.notification_id), row)

    def walk(self, account: str, after: str | None = None):
        return list(self.store.newest_first(account, after))

    def page(self, account: str, f: inbox.Filters = inbox.Filters(), max_results: int = 50, cursor: str | None = None):
        after = inbox.position_of(cursor) if cursor else None
        found = inbox.page(self.walk(account, after), f, max_results, cursor)
        return [e.notification_id for _, e in found.entries], found.cursor


def note(i: int, kind: str = "creative.approved", urgency: Urgency = Urgency.LOW, account: str = "acct", **refs) -> Notification:
    return Notification(notification_id=f"n{i:03d}", account_id=account, type=kind, urgency=urgency, message=f"m{i}",
                        created_at=T0 + timedelta(seconds=i), **refs)


def test_queries_filter_and_page_newest_first_with_a_stable_cursor():
    box = Inbox()
    for n in [note(i) for i in range(5)] + [note(10, "creative.rejected", Urgency.HIGH, creative_id="c1"),
                                            note(11, "campaign.creative_sync_unhealthy", Urgency.MEDIUM, campaign_id="holiday"),
                                            note(12, account="other")]:
        box.receive(n)
    key = inbox.row_key("acct", "n001")
    box.put(key, inbox.flagged(box.rows[key], NotificationOperation.MARK_READ, T0))
    first, cursor = box.page("acct", max_results=3)
    assert first == ["n011", "n010", "n004"] and cursor
    assert box.page("acct", max_results=10, cursor=cursor) == (["n003", "n002", "n001", "n000"], None)
    assert box.page("acct", inbox.Filters(unread_only=True, types=frozenset({"creative.approved"})))[0] == \
        ["n004", "n003", "n002", "n000"]
    assert box.page("acct", inbox.Filters(urgency=frozenset({"high"})))[0] == ["n010"]
    assert box.page("acct", inbox.Filters(campaign_id="holiday", campaign_creatives=frozenset({"c1"})))[0] == ["n011", "n010"]
    assert box.page("acct", inbox.Filters(since=T0 + timedelta(seconds=10)))[0] == ["n011", "n010"]
    assert box.page("acct", inbox.Filters(acknowledged=False, creative_id="c1"))[0] == ["n010"]
    assert box.counts["acct"] == {"total": 7, "unread": 6, "high_priority": 1}
    assert box.page("other")[0] == ["n012"] and box.page("nobody") == ([], None)
    with pytest.raises(inbox.BadCursor):
        inbox.position_of("not-a-cursor")


def test_filters_travel_as_json():
    f = inbox.Filters(types=frozenset({"creative.rejected"}), urgency=frozenset({"high"}), acknowledged=False,
                      unread_only=True, campaign_id="a~c", campaign_creatives=frozenset({"c1", "c2"}), creative_id="c1",
                      since=T0)
    assert inbox.Filters.from_json(f.as_json()) == f and inbox.Filters.from_json({}) == inbox.Filters()


def test_paging_an_inbox_that_changes_between_pages_skips_and_repeats_nothing():
    box = Inbox()
    for i in range(0, 40, 2):
        box.receive(note(i))
    seen, cursor, later = [], None, 100
    while True:
        page, cursor = box.page("acct", max_results=7, cursor=cursor)
        seen += page
        box.receive(note(later))  # newer than every page: not in this walk
        later += 1
        box.receive(note(len(seen) * 2 + 1 if len(seen) * 2 + 1 < 40 else 41))  # lands among the pages still to come
        if cursor is None:
            break
    assert len(seen) == len(set(seen))  # nothing repeated
    present_at_start = {f"n{i:03d}" for i in range(0, 40, 2)}
    assert present_at_start <= set(seen)  # nothing that was there all along skipped
    assert seen == sorted(seen, reverse=True)  # newest first throughout


def test_a_notification_that_comes_again_keeps_when_it_was_first_seen_and_its_flags():
    box = Inbox()
    box.receive(note(1))
    key = inbox.row_key("acct", "n001")
    box.put(key, inbox.flagged(box.rows[key], NotificationOperation.ACKNOWLEDGE, T0))
    again = note(1).model_copy(update={"created_at": T0 + timedelta(hours=1)})
    assert inbox.received(box.rows[key], again) is None  # a replay: nothing to write
    box.receive(again.model_copy(update={"message": "worded anew"}))
    row = box.rows[key]
    assert (row.message, row.created_at, row.read, row.acknowledged) == ("worded anew", T0 + timedelta(seconds=1), True, True)
    assert len(box.index) == 1 and box.counts["acct"] == {"total": 1}
    assert inbox.flagged(row, NotificationOperation.MARK_READ, T0) is None  # already read: nothing to write


def test_counts_follow_reads_and_acknowledgements():
    box = Inbox()
    box.receive(note(1, "creative.rejected", Urgency.HIGH))
    box.receive(note(2))
    assert box.counts["acct"] == {"total": 2, "unread": 2, "high_priority": 1}
    key = inbox.row_key("acct", "n001")
    box.put(key, inbox.flagged(box.rows[key], NotificationOperation.ACKNOWLEDGE, T0))
    assert box.counts["acct"] == {"total": 2, "unread": 1}
    box.put(key, None)
    box.put(inbox.row_key("acct", "n002"), None)
    assert box.counts["acct"] == {} and not box.index


def test_campaign_counts_take_its_own_its_creatives_and_its_agents_unread_notifications():
    box = Inbox()
    box.receive(note(1, "campaign.missing_creatives", Urgency.HIGH, campaign_id="a~holiday"))
    box.receive(note(2, "creative.rejected", Urgency.HIGH, creative_id="c1"))
    box.receive(note(3, "sales_agent.unavailable", Urgency.MEDIUM, sales_agent_id="a~ssp"))
    box.receive(note(4, "campaign.healthy", campaign_id="a~spring"))
    box.receive(note(5, creative_id="c9"))
    key = inbox.row_key("acct", "n005")
    box.put(key, inbox.flagged(box.rows[key], NotificationOperation.MARK_READ, T0))
    scopes = [inbox.CampaignScope("a~holiday", frozenset({"c1", "c9"}), frozenset({"a~ssp"})),
              inbox.CampaignScope("a~spring", frozenset(), frozenset())]
    assert inbox.campaign_counts(box.walk("acct"), scopes) == {"a~holiday": {"unread": 3, "highPriority": 2},
                                                               "a~spring": {"unread": 1, "highPriority": 0}}


def test_an_index_entry_reads_back_from_the_bytes_the_rocksdb_store_keeps():
    row = inbox.received(None, note(1, "creative.rejected", Urgency.HIGH, creative_id="c1", sales_agent_id="acct~ssp"))
    entry = inbox.Entry.of(inbox.flagged(row, NotificationOperation.ACKNOWLEDGE, T0))
    assert inbox.NotificationIndex.entry_of(inbox.NotificationIndex.entry_bytes(entry)) == entry
    assert (entry.read, entry.acknowledged, entry.campaign_id) == (True, True, None)
