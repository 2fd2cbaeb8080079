"""The library as its owner keeps and reads it: the creatives table's store, which also keeps the
library's ordered keys and per-account counts (streams.library.index) next to the rows they are
derived from.

Why derived rows and not tables of their own: the index is a function of the creatives. As tables,
its three rows per new creative and the account's counts were each a changelog record on the path
of `sync_creatives` (they halved its throughput). Here they are written in the same store write as
the creative (RocksDB: one WriteBatch, so a crash never leaves one without the other) and, when a
partition is restored or followed from the creatives' changelog, derived again from the records
replayed, so that the changelog of the creatives stays their only source.

Writes: the library processor, through `put_rows` (streams.app.Pipeline.write_rows). Reads:
`LibraryStore` (streams.library.reads, the processor's delete_missing).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import rocksdict  # faust's driver for its RocksDB store (a dependency)
from faust.stores import STORES
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore
from sortedcontainers import SortedDict

from streams.library import index
from streams.library.logic import creative_key
from streams.runtime import stored_row
from topics.codec import AvroCodec
from topics.events import StoredCreative

#: Prefixes of the derived rows in a partition's RocksDB: an encoded key of the creatives table
#: starts with 0xc3 (single-object Avro) or 0x00 (Confluent framing), never with these.
_INDEX, _COUNTS = b"\x01", b"\x02"

Change = tuple[Any, bytes, "StoredCreative | None", "bytes | None"]  # key, key bytes, value, value bytes


@functools.cache
def _codec(name: str) -> AvroCodec:
    # Local rows only (schema library_counts): framed with the schema's fingerprint, no registry;
    # read as dicts (cheaper than models).
    return AvroCodec(name)


def _entry_bytes(entry: index.Entry) -> bytes:
    """An index row's value: its fields joined by index.SEP (no id holds control characters). Not
    Avro: a derived row of this store only, never on a topic, written three times per new creative
    and read on every page; a change of this format changes the store's basename (derived anew)."""
    return index.SEP.join((entry.creative_id, entry.status, entry.format_kind or "", "1" if entry.assigned else "")).encode()


def _entry_of(raw: bytes) -> index.Entry:
    creative_id, status, kind, assigned = raw.decode().split(index.SEP)
    return index.Entry(creative_id, status, kind or None, bool(assigned))


def _account_of(key: str) -> str:
    return key.split("/", 1)[0]


def _by_account(changes: Iterable[tuple[str, StoredCreative | None, StoredCreative | None]]
                ) -> dict[str, list[tuple[StoredCreative | None, StoredCreative | None]]]:
    accounts: dict[str, list] = {}
    for key, before, after in changes:
        accounts.setdefault(_account_of(key), []).append((before, after))
    return accounts


class IndexedMemoryStore(MemoryStore):
    """faust's memory store (tests, `make up`) with the library's index in a sorted dict and its
    counts in a dict, as the RocksDB store below keeps them in the partition's database."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.index: SortedDict = SortedDict()  # index key -> index.Entry
        self.counts: dict[str, dict[str, int]] = {}  # account -> counts
        self._stale = False

    def put_rows(self, partition: int, rows: Iterable[Change]) -> None:
        changes = []
        for key, _, value, _ in rows:
            changes.append((key, self.data.get(key), value))
            if value is None:
                self.data.pop(key, None)
                self._key_partition.pop(key, None)
            else:
                self.data[key] = value
                self._key_partition[key] = partition
        self._derive(changes)

    def _derive(self, changes: Iterable[tuple[str, StoredCreative | None, StoredCreative | None]]) -> None:
        for account_id, moves in _by_account(changes).items():
            rows, counts = index.moved(self.counts.get(account_id, {}), moves)
            for key, entry in rows:
                if entry is None:
                    self.index.pop(key, None)
                else:
                    self.index[key] = entry
            self.counts[account_id] = counts

    def apply_changelog_batch(self, batch: Any, to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]) -> None:
        super().apply_changelog_batch(batch, to_key, to_value)
        self._stale = True  # derived again from the rows when next read (recovery has no readers)

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)  # drops the rows of revoked partitions
        self._stale = True

    def derived(self) -> IndexedMemoryStore:
        if self._stale:
            self._stale = False
            self.index.clear()
            self.counts.clear()
            self._derive((key, None, value) for key, value in self.data.items())
        return self


class IndexedRocksDBStore(RocksDBStore):
    """faust's RocksDB store whose partition databases also hold the library's index rows
    (`_INDEX` + key: the entry) and counts (`_COUNTS` + account: the counts), written in the same
    WriteBatch as the creatives they are derived from."""

    @property
    def basename(self) -> Path:
        # Not the plain store's files: a database written before the index was kept here has no
        # derived rows, and its persisted offsets would skip the replay that derives them.
        return Path(f"{self.table_name}-indexed")

    def put_rows(self, partition: int, rows: Iterable[Change]) -> None:
        """The rows, and what they change in the index and counts, in one write (the library
        processor's rows, and the changelog's records when a partition is restored or followed)."""
        db = self._db_for_partition(partition)
        batch, changes, latest = rocksdict.WriteBatch(raw_mode=True), [], {}
        for key, key_bytes, value, value_bytes in rows:
            if key_bytes in latest:  # the same creative twice in one write: after its first change
                before = latest[key_bytes]
            else:
                raw = db.get(key_bytes)
                before = self._decode_value(raw) if raw is not None else None
            latest[key_bytes] = value
            changes.append((key, before, value))
            if value_bytes is None:
                batch.delete(key_bytes)
            else:
                batch.put(key_bytes, value_bytes)
                self._key_index[key_bytes] = partition
        self._derive_into(batch, db, changes)
        db.write(batch)

    def apply_changelog_batch(self, batch: Any, to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]) -> None:
        """faust's: the records written to the partitions' databases; and the derived rows with them."""
        by_partition: dict[int, list] = {}
        offsets: dict[Any, int] = {}
        for event in batch:
            message = event.message
            offsets[message.tp] = max(offsets.get(message.tp, -1), message.offset)
            by_partition.setdefault(message.partition, []).append(message)
        for partition, messages in by_partition.items():
            self.put_rows(partition, [(self._decode_key(m.key), m.key, self._decode_value(m.value) if m.value is not None else None,
                                       m.value) for m in messages])
        for tp, offset in offsets.items():
            self.set_persisted_offset(tp, offset)

    def _derive_into(self, batch: Any, db: Any, changes: list) -> None:
        counts_codec = _codec("library_counts")
        encoded: dict[index.Entry, bytes] = {}  # a creative's rows hold one entry: encoded once
        for account_id, moves in _by_account(changes).items():
            raw = db.get(_COUNTS + account_id.encode())
            counts = counts_codec.decode(raw)["counts"] if raw is not None else {}
            rows, counts = index.moved(counts, moves)
            for key, entry in rows:
                if entry is None:
                    batch.delete(_INDEX + key.encode())
                    continue
                if entry not in encoded:
                    encoded[entry] = _entry_bytes(entry)
                batch.put(_INDEX + key.encode(), encoded[entry])
            batch.put(_COUNTS + account_id.encode(), counts_codec.encode({"account_id": account_id, "counts": counts}))

    def index_range(self, partition: int, low: str, high: str, descending: bool) -> Iterator[tuple[str, Any]]:
        db = self._db_for_partition(partition)
        first, last = _INDEX + low.encode(), _INDEX + high.encode()
        for raw_key, raw_value in db.items(from_key=last if descending else first, backwards=descending):
            if (raw_key < first) if descending else (raw_key > last):
                break
            yield raw_key[1:].decode(), _entry_of(raw_value)

    def account_counts(self, partition: int, account_id: str) -> dict[str, int]:
        raw = self._db_for_partition(partition).get(_COUNTS + account_id.encode())
        return dict(_codec("library_counts").decode(raw)["counts"]) if raw is not None else {}


STORES.aliases.setdefault("librarymemory", f"{__name__}:IndexedMemoryStore")
STORES.aliases.setdefault("libraryrocksdb", f"{__name__}:IndexedRocksDBStore")


def creatives_store_url(store: str) -> str:
    """The store of the creatives table: the app's store, with the library's index kept in it.
    (a host: yarl takes a URL with nothing after the scheme for false, and faust would use the app store)"""
    return "librarymemory://indexed" if store.startswith("memory") else "libraryrocksdb://indexed"


class LibraryStore:
    """What the owner of an account reads: its creatives by id, in the order of a sort field, and its counts."""

    def __init__(self, creatives: Any, partition_of: Any) -> None:
        self._creatives, self._partition_of = creatives, partition_of

    def get(self, account_id: str, creative_id: str) -> StoredCreative | None:
        return stored_row(self._creatives, creative_key(account_id, creative_id))

    def counts(self, account_id: str) -> dict[str, int]:
        store = self._creatives.data
        if isinstance(store, IndexedMemoryStore):
            return dict(store.derived().counts.get(account_id, {}))
        return store.account_counts(self._partition_of(account_id), account_id)

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
        store = self._creatives.data
        if isinstance(store, IndexedMemoryStore):
            rows = store.derived().index
            for key in rows.irange(low, high, reverse=descending):
                yield key, rows[key]
            return
        yield from store.index_range(self._partition_of(account_id), low, high, descending)
