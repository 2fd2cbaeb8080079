"""Retention by age of the rows of an indexed table (streams.stores): the owner of a partition
forgets, account by account, the rows older than a cutoff. The tables that age this way keep an
index ordered by time within each account (`<account prefix><moment><...>`, the moment as
`moment()` writes it), so that what is expired is a range of keys at the front of the account's
index: the sweep reads only what it deletes.

Rows go as tombstones in the table's changelog (compaction removes them from the topic).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from streams.runtime import tables_restoring

MOMENT_WIDTH = 16  # hex digits of milliseconds since the epoch


def moment(when: datetime) -> str:
    """A time as an index key part: fixed width, ordered like the times."""
    return f"{int(when.timestamp() * 1000):0{MOMENT_WIDTH}x}"


def expired_range(prefix: str, cutoff: datetime) -> tuple[str, str]:
    """The index keys of an account (`prefix`) of rows older than `cutoff` (inclusive bounds: no
    key equals the upper bound, every key being longer)."""
    return prefix, prefix + moment(cutoff)


def expired_keys(pipeline: Any, table_name: str, role: str, cutoff: datetime, *,  # streams.app.Pipeline
                 prefix_of: Callable[[str], str], row_key_of: Callable[[str, Any], Any]) -> dict[int, list[Any]]:
    """The keys of the rows of `table_name` (which follows topic `role`) older than `cutoff`, in the
    partitions this worker owns, by partition (none during a rebalance). `row_key_of(account,
    index entry)`: the row's key."""
    app, store = pipeline.app, pipeline.tables[table_name].data
    if tables_restoring(app):
        return {}
    topic_name, partition_of = pipeline.topics[role].get_topic_name(), pipeline.codecs.partition_of(role)
    found: dict[int, list[Any]] = {}
    for tp in app.assignor.assigned_actives():
        if tp.topic != topic_name:
            continue
        for account_id in store.accounts(tp.partition, lambda a, p=tp.partition: partition_of(a) == p):
            low, high = expired_range(prefix_of(account_id), cutoff)
            keys = [row_key_of(account_id, entry) for _, entry in store.index_range(tp.partition, low, high, False)]
            if keys:
                found.setdefault(tp.partition, []).extend(keys)
    return found


async def forget_older(pipeline: Any, table_name: str, role: str, cutoff: datetime, *,  # streams.app.Pipeline
                       prefix_of: Callable[[str], str], row_key_of: Callable[[str, Any], Any]) -> int:
    """Tombstone the rows of `table_name` older than `cutoff` (see expired_keys); how many went."""
    expired = expired_keys(pipeline, table_name, role, cutoff, prefix_of=prefix_of, row_key_of=row_key_of)
    for partition, keys in expired.items():
        await pipeline.write_rows(table_name, ((key, None) for key in keys), partition=partition)
    gone = sum(len(keys) for keys in expired.values())
    if gone:
        pipeline.metrics.expired.labels(table_name).inc(gone)
    return gone
