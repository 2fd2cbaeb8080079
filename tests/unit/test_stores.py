"""The stores that keep rows derived from a table's rows (streams.stores), in memory: written rows
move the index and counts once; after a restore (the rows replayed from the changelog) the index
is derived again from the rows, before the next write moves it. (RocksDB: the restart tests in
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
