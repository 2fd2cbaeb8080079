"""The views of topics (no broker: records are handed to the view as its consumer would) and the
gateway's bounded caches."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from topics.catalogue import Codecs
from topics.events import CreativeSyncState
from topics.views import StatusChanges

CODECS = Codecs()
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class Record:  # what aiokafka hands a consumer: raw key and value
    key: bytes
    value: bytes


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
