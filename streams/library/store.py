"""The library as its owner keeps and reads it: the creatives table's store (streams.stores) also
keeps the library's ordered keys and per-account counts (streams.library.index) next to the rows
they are derived from.

Why derived rows and not tables of their own: the index is a function of the creatives. As tables,
its three rows per new creative and the account's counts were each a changelog record on the path
of `sync_creatives` (they halved its throughput).

Writes: the library processor, through streams.app.Pipeline.write_rows. Reads: `LibraryStore`
(streams.library.reads, the processor's delete_missing).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from streams import stores
from streams.library import index
from streams.library.logic import creative_key
from streams.retention import moment
from streams.runtime import stored_row
from topics.events import IdempotencyRecord, StoredCreative


class LibraryIndex:
    """The creatives table's derivation (streams.stores): the index of streams.library.index."""

    @staticmethod
    def account_of(key: str) -> str:
        return key.split("/", 1)[0]

    @staticmethod
    def moved(counts: Mapping[str, int], changes: Iterable[tuple[StoredCreative | None, StoredCreative | None]]
              ) -> tuple[stores.Rows, dict[str, int]]:
        return index.moved(counts, changes)

    @staticmethod
    def entry_bytes(entry: index.Entry) -> bytes:
        """An index row's value: its fields joined by index.SEP (no id holds control characters). Not
        Avro: a derived row of this store only, never on a topic, written three times per new creative
        and read on every page; a change of this format changes the store's basename (derived anew)."""
        return index.SEP.join((entry.creative_id, entry.status, entry.format_kind or "", "1" if entry.assigned else "")).encode()

    @staticmethod
    def entry_of(raw: bytes) -> index.Entry:
        creative_id, status, kind, assigned = raw.decode().split(index.SEP)
        return index.Entry(creative_id, status, kind or None, bool(assigned))


stores.derive("creatives", LibraryIndex())


class IdempotencyIndex(stores.TextEntries):
    """The idempotency table's derivation (streams.stores): each account's keys in the order they
    were recorded, so that the owner forgets the expired ones by reading only them
    (streams.retention). An index row holds the idempotency key."""

    account_of = staticmethod(LibraryIndex.account_of)

    @staticmethod
    def prefix(account_id: str) -> str:
        return f"{account_id}{index.SEP}"

    @staticmethod
    def moved(counts: Mapping[str, int], changes: Iterable[tuple[IdempotencyRecord | None, IdempotencyRecord | None]]
              ) -> tuple[stores.Rows, dict[str, int]]:
        return stores.moved_rows(counts, changes, lambda record: {
            f"{IdempotencyIndex.prefix(record.account_id)}{moment(record.recorded_at)}{index.SEP}{record.idempotency_key}":
                record.idempotency_key}, lambda record: {"keys": 1})


stores.derive("idempotency", IdempotencyIndex())


class LibraryStore:
    """What the owner of an account reads: its creatives by id, in the order of a sort field, and its counts."""

    def __init__(self, creatives: Any, partition_of: Any) -> None:
        self._creatives, self._partition_of = creatives, partition_of

    def get(self, account_id: str, creative_id: str) -> StoredCreative | None:
        return stored_row(self._creatives, creative_key(account_id, creative_id))

    def counts(self, account_id: str) -> dict[str, int]:
        return self._creatives.data.account_counts(self._partition_of(account_id), account_id)

    def scan(self, account_id: str, field: str, descending: bool, start: str | None,
             statuses: list[str] | None = None) -> Iterator[tuple[str, Any, Callable[[], StoredCreative | None] | None]]:
        """The account's creatives in `field`'s order from position `start` (inclusive), as
        (position, index entry, a function reading the creative: only when the entry may match);
        rows a derived order passes over come as (position, None, None) (see index.walk)."""
        def stored_walk(order: str, backwards: bool, at: str | None) -> Iterator[tuple[str, Any, Callable[[], Any]]]:
            begin = len(index.prefix(account_id, order))
            for key, entry in self._keys(account_id, order, backwards, at):
                if index.in_range(key, account_id, order):
                    yield key[begin:], entry, functools.partial(self.get, account_id, entry.creative_id)
        counts = self.counts(account_id) if field == "status" else {}
        return index.walk(field, descending, start, stored_walk, counts, statuses)

    def _keys(self, account_id: str, field: str, descending: bool, start: str | None) -> Iterator[tuple[str, Any]]:
        low, high = index.bounds(account_id, field)
        if start is not None:
            at = index.prefix(account_id, field) + start
            low, high = (low, at) if descending else (at, high)
        yield from self._creatives.data.index_range(self._partition_of(account_id), low, high, descending)
