"""The stores that keep rows derived from a table's rows (streams.stores), in memory: written rows
move the index and counts once; after a restore (the rows replayed from the changelog) the index
is derived again from the rows, before the next write moves it; changelog records followed once
it is derived (a standby) move it as writes do. (RocksDB: the restart tests in
tests/integration/test_worker_restart.py.)"""
from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import faust
import pytest

import streams.notify.store  # noqa: F401 - registers the notifications' derivation
from streams.notify import inbox
from streams.stores import IndexedMemoryStore
from topics.events import StoredNotification, Urgency

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def row(i: int) -> tuple[str, bytes, StoredNotification, None]:
    note = StoredNotification(notification_id=f"n{i}", account_id="acct", type="creative.approved", urgency=Urgency.LOW,
                              message="m", created_at=T0)
    return inbox.row_key("acct", note.notification_id), b"", note, None


def test_a_write_after_a_restore_counts_each_row_once():
    store = IndexedMemoryStore("indexedmemory://indexed", faust.App("test-stores", store="memory://"),
                               SimpleNamespace(name="notifications"), table_name="notifications")
    store.put_rows(0, [row(1), row(2)])
    assert store.account_counts(0, "acct") == {"total": 2, "unread": 2}
    store.data[row(3)[0]] = row(3)[2]  # what a changelog replay does: rows only...
    store._stale = True  # ...and the derived rows are stale (apply_changelog_batch, on_recovery_completed)
    store.put_rows(0, [row(4)])
    assert store.account_counts(0, "acct") == {"total": 4, "unread": 4}
    assert [e.notification_id for _, e in store.index_range(0, *inbox.bounds("acct"), True)] == ["n4", "n3", "n2", "n1"]
    store.put_rows(0, [(row(1)[0], b"", None, None)])
    assert store.account_counts(0, "acct") == {"total": 3, "unread": 3} and store.accounts(0, lambda a: True) == ["acct"]


def test_changelog_records_followed_after_a_read_move_the_index_without_deriving_it_again():
    store = IndexedMemoryStore("indexedmemory://indexed", faust.App("test-stores-2", store="memory://"),
                               SimpleNamespace(name="notifications"), table_name="notifications")
    store.put_rows(0, [row(1)])
    assert store.account_counts(0, "acct") == {"total": 1, "unread": 1}  # derived, and read

    def record(i: int, value: StoredNotification | None) -> SimpleNamespace:  # a changelog event as faust hands it
        return SimpleNamespace(key=row(i)[0], value=value, message=SimpleNamespace(value=b"x" if value else None, partition=1))
    derived = store.derived
    store.apply_changelog_batch([record(2, row(2)[2]), record(3, row(3)[2]), record(1, None)], lambda k: k, lambda v: v)
    assert store.derived is derived and not store._stale  # followed, not rebuilt
    assert store.account_counts(0, "acct") == {"total": 2, "unread": 2} and sorted(store.data) == [row(2)[0], row(3)[0]]
    assert [e.notification_id for _, e in store.index_range(0, *inbox.bounds("acct"), True)] == ["n3", "n2"]
