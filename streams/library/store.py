"""The library as its owner reads it: the creatives, index and counts tables of the partitions this
worker owns, read in key order (RocksDB as deployed; a sorted in-memory store in tests).

Reads only; the library processor (streams/library/agent.py) writes.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from faust.stores import STORES
from faust.stores.base import SerializedStore
from faust.stores.memory import Store as MemoryStore
from sortedcontainers import SortedDict

from streams.library import index
from streams.library.logic import creative_key
from streams.runtime import stored_row
from topics.events import StoredCreative

# (a host: yarl takes a URL with nothing after the scheme for false, and faust would use the app store)
SORTED_MEMORY = "sortedmemory://ordered"


class SortedMemoryStore(MemoryStore):
    """faust's memory store with its keys kept in order, so that an index table can be walked by
    range in tests as RocksDB walks it in production (faust's own keeps a plain dict)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.data = SortedDict()


STORES.aliases.setdefault("sortedmemory", f"{__name__}:SortedMemoryStore")


def index_store_url(store: str) -> str:
    """The store of the index table: the app's store, kept sorted when it is the memory store."""
    return SORTED_MEMORY if store.startswith("memory") else store


class LibraryStore:
    """What the owner of an account reads: its creatives by id, in the order of a sort field, and its counts."""

    def __init__(self, creatives: Any, library_index: Any, counts: Any, partition_of: Any) -> None:
        self._creatives, self._index, self._counts, self._partition_of = creatives, library_index, counts, partition_of

    def get(self, account_id: str, creative_id: str) -> StoredCreative | None:
        return stored_row(self._creatives, creative_key(account_id, creative_id))

    def counts(self, account_id: str) -> dict[str, int]:
        row = stored_row(self._counts, account_id)
        return dict(row.counts) if row is not None else {}

    def scan(self, account_id: str, field: str, descending: bool, start: str | None,
             statuses: list[str] | None = None) -> Iterator[tuple[str, Any, Callable[[], StoredCreative | None] | None]]:
        """The account's creatives in `field`'s order from position `start` (inclusive), as
        (position, index entry, a function reading the creative: only when the entry may match);
        rows a derived order passes over come as (position, None, None) (see index.walk)."""
        def stored_walk(order: str, backwards: bool, at: str | None) -> Iterator[tuple[str, Any, Callable[[], Any]]]:
            begin = len(index.prefix(account_id, order))
            for key, entry in self._keys(account_id, order, backwards, at):
                yield key[begin:], entry, functools.partial(self.get, account_id, entry.creative_id)
        counts = self.counts(account_id) if field == "status" else {}
        return index.walk(field, descending, start, stored_walk, counts, statuses)

    def _keys(self, account_id: str, field: str, descending: bool, start: str | None) -> Iterator[tuple[str, Any]]:
        low, high = index.bounds(account_id, field)
        if start is not None:
            at = index.prefix(account_id, field) + start
            low, high = (low, at) if descending else (at, high)
        store = self._index.data
        if isinstance(store, SerializedStore):  # RocksDB: one database per partition, keys as Avro bytes
            db = store._db_for_partition(self._partition_of(account_id))
            first, last = store._encode_key(low), store._encode_key(high)
            for raw_key, raw_value in db.items(from_key=last if descending else first, backwards=descending):
                if (raw_key < first) if descending else (raw_key > last):
                    break
                key = store._decode_key(raw_key)
                if index.in_range(key, account_id, field):
                    yield key, store._decode_value(raw_value)
            return
        for key in store.data.irange(low, high, reverse=descending):
            if index.in_range(key, account_id, field):
                yield key, store.data[key]
