"""The views that keep compacted topics' records as bytes until read (no broker: records are
handed to the view as its consumer would)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from topics.catalogue import Codecs
from topics.events import CreativeSyncState, Notification, Urgency
from topics.views import GroupedLazyView, StatusChanges

CODECS = Codecs()
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class Record:  # what aiokafka hands a consumer: raw key and value
    key: bytes
    value: bytes


def notification(account: str, note_id: str, message: str) -> Record:
    note = Notification(notification_id=note_id, account_id=account, type="creative.approved", urgency=Urgency.LOW,
                        message=message, created_at=T0)
    return Record(CODECS.key("notifications").encode(account), CODECS.value("notifications").encode(note))


def test_notifications_are_decoded_per_account_when_read_latest_per_id():
    view = GroupedLazyView("unused:9092", "notifications", CODECS.value("notifications"), CODECS.key("notifications"),
                           lambda n: n.notification_id)
    for record in (notification("a", "n1", "first"), notification("b", "n2", "other account"),
                   notification("a", "n1", "first, again"), notification("a", "n3", "second"),
                   Record(CODECS.key("notifications").encode("a"), b"not avro")):
        view._take(record)
    assert sorted((n.notification_id, n.message) for n in view.group("a")) == [("n1", "first, again"), ("n3", "second")]
    assert [n.account_id for n in view.group("b")] == ["b"] and view.group("nobody") == []
    assert view.find("a", "n3").message == "second" and view.find("b", "n3") is None  # another account's: not found
    view._take(notification("a", "n4", "later"))
    assert sorted(n.notification_id for n in view.group("a")) == ["n1", "n3", "n4"]


def test_status_changes_are_told_by_key_and_nothing_is_kept():
    changed = []
    watcher = StatusChanges("unused:9092", CODECS, "", lambda account, creative: changed.append((account, creative)))

    def status(version: int) -> Record:
        state = CreativeSyncState(account_id="acct", creative_id="c1", content_version=version)
        return Record(CODECS.key("sync_status").encode("acct/c1"), CODECS.value("sync_status").encode(state))
    watcher._take(status(1))
    watcher._take(status(2))
    watcher._take(Record(b"not avro", b"whatever"))  # skipped, with a warning
    assert changed == [("acct", "c1"), ("acct", "c1")] and watcher.items == {}


def test_the_gateways_task_cache_is_bounded_by_count_and_by_bytes():
    from gateway.read_model import Bounded

    by_count = Bounded(3)
    for i in range(10):
        by_count[i] = "x"
    assert list(by_count) == [7, 8, 9]
    by_bytes = Bounded(1000, max_bytes=100, size_of=len)
    for i in range(10):
        by_bytes[i] = "y" * 30
    assert list(by_bytes) == [7, 8, 9] and by_bytes.bytes == 90
    by_bytes[9] = "z" * 60  # replaced: its old size leaves the total
    assert list(by_bytes) == [8, 9] and by_bytes.bytes == 90
