"""Table stores that keep, next to a table's rows, rows derived from them: per-account ordered keys
(an index) and per-account counts. The owner of a partition then reads a page of an account in
some order as a range of keys, not as a scan of the table (Kafka Streams would keep a second store
fed from the same changelog; here it is the same database, so that one write holds both).

What is derived is the table's own business, a `Derivation` registered under the table's name
(streams/library/store.py: the library's orders; streams/notify/store.py: the notifications,
newest first). This module only keeps the derived rows in step with the rows:
- live writes come through `put_rows` (streams.app.Pipeline.write_rows): RocksDB writes the rows
  and their derived rows in one WriteBatch, so a crash never leaves one without the other;
- a partition restored or followed from the changelog derives them again from the records
  replayed (`apply_changelog_batch`), so the changelog stays the only source.

Selected by the store URL `indexed_store_url(app store)` for the tables whose spec says `indexed`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import rocksdict  # faust's driver for its RocksDB store (a dependency)
from faust.stores import STORES
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore
from sortedcontainers import SortedDict

from topics.codec import AvroCodec

#: Prefixes of the derived rows in a partition's RocksDB: an encoded key of a table starts with
#: 0xc3 (single-object Avro) or 0x00 (Confluent framing), never with these.
_INDEX, _COUNTS = b"\x01", b"\x02"

Change = tuple[Any, bytes, Any, "bytes | None"]  # key, key bytes, value (None: deleted), value bytes
Rows = list[tuple[str, Any]]  # derived index rows: (index key, entry), entry None: the row goes


class Derivation(Protocol):
    """What a table's store derives from its rows."""

    def account_of(self, key: Any) -> str: ...

    def moved(self, counts: Mapping[str, int], changes: Iterable[tuple[Any, Any]]) -> tuple[Rows, dict[str, int]]:
        """What rows going from `before` to `after` (None: absent), in order, change in their
        account's index, and the account's counts after them."""

    def entry_bytes(self, entry: Any) -> bytes: ...

    def entry_of(self, raw: bytes) -> Any: ...


DERIVATIONS: dict[str, Derivation] = {}  # by table name


def moved_rows(counts: Mapping[str, int], changes: Iterable[tuple[Any, Any]], rows_of: Callable[[Any], dict[str, Any]],
               counted: Callable[[Any], Mapping[str, int]]) -> tuple[Rows, dict[str, int]]:
    """`Derivation.moved` for a derivation whose index rows and counts are functions of one row
    (`rows_of(row)`: index key -> entry; `counted(row)`: what it adds to the account's counts):
    a row's old index rows go, its new ones come, in order; counts at zero are dropped."""
    rows: dict[str, Any] = {}
    totals = dict(counts)
    for before, after in changes:
        for row, sign in ((before, -1), (after, 1)):
            if row is None:
                continue
            for key, entry in rows_of(row).items():
                rows[key] = entry if sign > 0 else None
            for name, value in counted(row).items():
                totals[name] = totals.get(name, 0) + sign * value
    return list(rows.items()), {name: value for name, value in totals.items() if value}


class TextEntries:
    """For a derivation whose index rows hold a string (an id the key leads to)."""

    @staticmethod
    def entry_bytes(entry: str) -> bytes:
        return entry.encode()

    @staticmethod
    def entry_of(raw: bytes) -> str:
        return raw.decode()


def derive(table_name: str, derivation: Derivation) -> Derivation:
    """Register what the store of table `table_name` derives (at import of the table's module)."""
    DERIVATIONS[table_name] = derivation
    return derivation


@functools.cache
def _counts_codec() -> AvroCodec:
    # Local rows only (schema library_counts: an account and a map of counts): framed with the
    # schema's fingerprint, no registry; read as dicts (cheaper than models).
    return AvroCodec("library_counts")


def _by_account(derivation: Derivation, changes: Iterable[tuple[Any, Any, Any]]) -> dict[str, list[tuple[Any, Any]]]:
    accounts: dict[str, list] = {}
    for key, before, after in changes:
        accounts.setdefault(derivation.account_of(key), []).append((before, after))
    return accounts


class DerivedIndex:
    """The derived rows of a memory store: the index in a sorted dict, the counts in a dict (what
    the RocksDB store below keeps in the partition's database). Also the unit tests' stand-in for
    a table's store (tests/support.py: MemoryTable)."""

    def __init__(self, derivation: Derivation) -> None:
        self.derivation = derivation
        self.index: SortedDict = SortedDict()  # index key -> entry
        self.counts: dict[str, dict[str, int]] = {}  # account -> counts

    def apply(self, changes: Iterable[tuple[Any, Any, Any]]) -> None:
        """What rows going from `before` to `after` change: (key, before, after), in order."""
        for account_id, moves in _by_account(self.derivation, changes).items():
            rows, counts = self.derivation.moved(self.counts.get(account_id, {}), moves)
            for key, entry in rows:
                if entry is None:
                    self.index.pop(key, None)
                else:
                    self.index[key] = entry
            self.counts[account_id] = counts

    def clear(self) -> None:
        self.index.clear()
        self.counts.clear()

    def index_range(self, partition: int, low: str, high: str, descending: bool) -> Iterator[tuple[str, Any]]:
        # (the partition does not matter here: one index holds every partition's keys)
        for key in self.index.irange(low, high, reverse=descending):
            yield key, self.index[key]

    def account_counts(self, partition: int, account_id: str) -> dict[str, int]:
        return dict(self.counts.get(account_id, {}))

    def accounts(self, partition: int, account_in_partition: Callable[[str], bool]) -> list[str]:
        return [a for a, counts in self.counts.items() if counts and account_in_partition(a)]


class IndexedMemoryStore(MemoryStore):
    """faust's memory store (tests, `make up`) with its derived rows in a DerivedIndex."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._derived: DerivedIndex | None = None
        self._stale = False

    @property
    def derived(self) -> DerivedIndex:
        if self._derived is None:
            self._derived = DerivedIndex(DERIVATIONS[self.table_name])
        if self._stale:  # derived again from the rows when next read (recovery has no readers)
            self._stale = False
            self._derived.clear()
            self._derived.apply((key, None, value) for key, value in self.data.items())
        return self._derived

    def put_rows(self, partition: int, rows: Iterable[Change]) -> None:
        derived, changes = self.derived, []  # (derived again first, if stale: from the rows before these)
        for key, _, value, _ in rows:
            changes.append((key, self.data.get(key), value))
            if value is None:
                self.data.pop(key, None)
                self._key_partition.pop(key, None)
            else:
                self.data[key] = value
                self._key_partition[key] = partition
        derived.apply(changes)

    def apply_changelog_batch(self, batch: Any, to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]) -> None:
        """faust's, and the derived rows moved with the records (a standby follows other workers'
        writes batch by batch: deriving everything again at the next read would cost a scan each time)."""
        if self._stale or self._derived is None:  # nothing derived to keep up: derived when next read
            super().apply_changelog_batch(batch, to_key, to_value)
            self._stale = True
            return
        changes = []
        for event in batch:
            key = to_key(event.key)
            after = None if event.message.value is None else to_value(event.value)
            changes.append((key, self.data.get(key), after))
            if after is None:
                self.data.pop(key, None)
                self._key_partition.pop(key, None)
            else:
                self.data[key] = after
                self._key_partition[key] = event.message.partition
        self._derived.apply(changes)

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)  # drops the rows of revoked partitions
        self._stale = True

    def index_range(self, partition: int, low: str, high: str, descending: bool) -> Iterator[tuple[str, Any]]:
        return self.derived.index_range(partition, low, high, descending)

    def account_counts(self, partition: int, account_id: str) -> dict[str, int]:
        return self.derived.account_counts(partition, account_id)

    def accounts(self, partition: int, account_in_partition: Callable[[str], bool]) -> list[str]:
        return self.derived.accounts(partition, account_in_partition)


class IndexedRocksDBStore(RocksDBStore):
    """faust's RocksDB store whose partition databases also hold the derived index rows (`_INDEX`
    + index key: the entry) and counts (`_COUNTS` + account: the counts), written in the same
    WriteBatch as the rows they are derived from."""

    @property
    def derivation(self) -> Derivation:
        return DERIVATIONS[self.table_name]

    @property
    def basename(self) -> Path:
        # Not the plain store's files: a database written without the derived rows has none, and
        # its persisted offsets would skip the replay that derives them.
        return Path(f"{self.table_name}-indexed")

    def put_rows(self, partition: int, rows: Iterable[Change]) -> None:
        """The rows, and what they change in the index and counts, in one write (a processor's
        rows, and the changelog's records when a partition is restored or followed)."""
        db = self._db_for_partition(partition)
        batch, changes, latest = rocksdict.WriteBatch(raw_mode=True), [], {}
        for key, key_bytes, value, value_bytes in rows:
            if key_bytes in latest:  # the same key twice in one write: after its first change
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
        codec, derivation = _counts_codec(), self.derivation
        encoded: dict[Any, bytes] = {}  # a row's index rows often hold one entry: encoded once
        for account_id, moves in _by_account(derivation, changes).items():
            raw = db.get(_COUNTS + account_id.encode())
            counts = codec.decode(raw)["counts"] if raw is not None else {}
            rows, counts = derivation.moved(counts, moves)
            for key, entry in rows:
                if entry is None:
                    batch.delete(_INDEX + key.encode())
                    continue
                if entry not in encoded:
                    encoded[entry] = derivation.entry_bytes(entry)
                batch.put(_INDEX + key.encode(), encoded[entry])
            if counts:
                batch.put(_COUNTS + account_id.encode(), codec.encode({"account_id": account_id, "counts": counts}))
            else:
                batch.delete(_COUNTS + account_id.encode())

    # -- reads ------------------------------------------------------------------------------------
    def index_range(self, partition: int, low: str, high: str, descending: bool) -> Iterator[tuple[str, Any]]:
        db, entry_of = self._db_for_partition(partition), self.derivation.entry_of
        first, last = _INDEX + low.encode(), _INDEX + high.encode()
        for raw_key, raw_value in db.items(from_key=last if descending else first, backwards=descending):
            if (raw_key < first) if descending else (raw_key > last):
                break
            yield raw_key[1:].decode(), entry_of(raw_value)

    def account_counts(self, partition: int, account_id: str) -> dict[str, int]:
        raw = self._db_for_partition(partition).get(_COUNTS + account_id.encode())
        return dict(_counts_codec().decode(raw)["counts"]) if raw is not None else {}

    def accounts(self, partition: int, account_in_partition: Callable[[str], bool]) -> list[str]:
        """The accounts with rows in `partition` (those with counts)."""
        found = []
        for raw_key in self._db_for_partition(partition).keys(from_key=_COUNTS):
            if not raw_key.startswith(_COUNTS):
                break
            found.append(raw_key[1:].decode())
        return found


STORES.aliases.setdefault("indexedmemory", f"{__name__}:IndexedMemoryStore")
STORES.aliases.setdefault("indexedrocksdb", f"{__name__}:IndexedRocksDBStore")


def indexed_store_url(store: str) -> str:
    """The store of an indexed table: the app's store, with the derived rows kept in it.
    (a host: yarl takes a URL with nothing after the scheme for false, and faust would use the app store)"""
    return "indexedmemory://indexed" if store.startswith("memory") else "indexedrocksdb://indexed"

