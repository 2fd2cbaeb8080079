"""The library's per-account ordered keys: index rows per creative, derived by the
creatives table's store next to the rows (streams.library.store), so that a page of `list_creatives`
(and the next page, and `delete_missing`'s walk of an account) reads a range of keys, not a library.

Pure: keys and rows from stored creatives, no I/O.

Why the keys look the way they do: a table's keys are stored as Avro strings, a length followed by
the bytes, and RocksDB orders them by those bytes. Within one account and one sort order every key
here has the same length (the sort value and the tie-breaker are fixed-width ASCII), so the byte
order is the order of the sort values; the in-memory store of the tests keeps the same keys in a
sorted dict and agrees. Bounds of a range are keys of that same length made of the lowest and the
highest character.

Why only three rows per new creative: every row is a store write and a changelog record on the
path of `sync_creatives` (five rows per creative halved its throughput). Creation, update and name
orders are stored for every creative. The status order (status, then creation) is a walk of the
creation order per status, the entries carrying the status (the account's counts say how many of
each to expect, so a group's walk ends at its last member). The assignment-count order (count, then
creation) stores rows only for assigned creatives; the unassigned ones (most of a library) are a
walk of the creation order, the entries saying whether a creative is assigned. Both derived walks
give the same positions a stored order would, so cursors and merges do not tell them apart.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from topics.events import StoredCreative

#: Separates an index key's parts; never part of an id (ids with control characters are refused).
SEP = "\x1f"
_LOW, _HIGH = "\x00", "\x7f"  # below and above every character of a key's fixed-width tail
_ID_WIDTH = 16  # hex digits of the id's digest: the tie-breaker between equal sort values
_NAME_BYTES = 24  # a name is ordered by its first 24 bytes (lower-cased); longer ties by id digest
_STATUS_BYTES = 16


@dataclass(frozen=True)
class SortOrder:
    field: str  # the AdCP sort field (creative-sort-field)
    code: str  # one letter in the key
    width: int  # characters of the sort value
    stored: bool = True  # False: a walk of the creation order (status)

    def value(self, stored: StoredCreative, creative: Mapping[str, Any]) -> str:
        if self.field == "created_date":
            return _moment(stored.created_at)
        if self.field == "updated_date":
            return _moment(stored.updated_at)
        if self.field == "name":
            return _text(str(creative.get("name") or stored.creative_id).lower(), _NAME_BYTES)
        if self.field == "status":  # by status, then by creation
            return _text(stored.status, _STATUS_BYTES) + _moment(stored.created_at)
        return _count(len(stored.assigned_to)) + _moment(stored.created_at)  # assignment_count, then creation


def _count(count: int) -> str:
    return f"{min(count, 0xFFFFFFFF):08x}"


_UNASSIGNED = _count(0)


def _moment(when: datetime) -> str:
    return f"{int(when.timestamp() * 1_000_000):016x}"


def _text(text: str, width: int) -> str:
    """Order-preserving fixed width: the first `width` bytes in hex (hex digits keep byte order),
    padded with zeros (a shorter text sorts before its extensions, as strings do)."""
    return text.encode()[:width].hex().ljust(2 * width, "0")


ORDERS: dict[str, SortOrder] = {o.field: o for o in (
    SortOrder("created_date", "c", 16),
    SortOrder("updated_date", "u", 16),
    SortOrder("name", "n", 2 * _NAME_BYTES),
    SortOrder("status", "s", 2 * _STATUS_BYTES + 16, stored=False),
    SortOrder("assignment_count", "a", 8 + 16),  # rows of assigned creatives only
)}
SORT_FIELDS = tuple(ORDERS)
_CREATION = "created_date"


def id_digest(creative_id: str) -> str:
    return hashlib.sha256(creative_id.encode()).hexdigest()[:_ID_WIDTH]


def prefix(account_id: str, field: str) -> str:
    return f"{account_id}{SEP}{ORDERS[field].code}{SEP}"


def position(stored: StoredCreative, field: str, creative: Mapping[str, Any] | None = None) -> str:
    """Where `stored` stands in `field`'s order: a fixed-width tail, comparable across accounts."""
    creative = creative if creative is not None else json.loads(stored.creative_json)
    return ORDERS[field].value(stored, creative) + SEP + id_digest(stored.creative_id)


def tail_width(field: str) -> int:
    return ORDERS[field].width + 1 + _ID_WIDTH


def bounds(account_id: str, field: str) -> tuple[str, str]:
    """The lowest and the highest key a row of this account and order can have (same length as any)."""
    start, width = prefix(account_id, field), tail_width(field)
    return start + _LOW * width, start + _HIGH * width


def in_range(key: str, account_id: str, field: str) -> bool:
    start = prefix(account_id, field)
    return key.startswith(start) and len(key) == len(start) + tail_width(field)


def keys_of(stored: StoredCreative, creative: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The index keys stored for a creative, by sort field (see the module's doc for the others)."""
    creative = creative if creative is not None else json.loads(stored.creative_json)
    start, tail = f"{stored.account_id}{SEP}", SEP + id_digest(stored.creative_id)
    return {field: f"{start}{order.code}{SEP}{order.value(stored, creative)}{tail}" for field, order in ORDERS.items()
            if order.stored and (field != "assignment_count" or stored.assigned_to)}


@dataclass(frozen=True)
class Entry:
    """What an index row holds: the creative, and what the cheapest filters (status, format kind)
    are decided on without reading the creative itself."""

    creative_id: str
    status: str
    format_kind: str | None
    assigned: bool = False  # to at least one package (the unassigned are walked in creation order)


@dataclass(frozen=True)
class Placement:
    """Where a creative stands in its account's index and counts (one parse of its JSON)."""

    keys: dict[str, str]
    bucket: str
    entry: Entry

    @classmethod
    def of(cls, stored: StoredCreative) -> Placement:
        creative = json.loads(stored.creative_json)
        return cls(keys_of(stored, creative), count_key(stored, creative),
                   Entry(stored.creative_id, stored.status, creative.get("format_kind") or None, bool(stored.assigned_to)))


def may_match(entry: Any, filters: Mapping[str, Any]) -> bool:
    """Whether a creative with this index entry can match `filters`, judged on the entry alone
    (statuses: archived ones only when asked for; format kinds); the rest needs the creative."""
    statuses = filters.get("statuses")
    if (entry.status not in statuses) if statuses else entry.status == "archived":
        return False
    kinds = filters.get("format_kinds")
    return not kinds or entry.format_kind in kinds


def moved(counts: Mapping[str, int], changes: Iterable[tuple[StoredCreative | None, StoredCreative | None]]
          ) -> tuple[list[tuple[str, Entry | None]], dict[str, int]]:
    """What creatives going from `before` to `after` (None: absent) change in their account's index
    and counts, in order: the index rows to write, and the counts after."""
    placed = [(Placement.of(before) if before is not None else None, Placement.of(after) if after is not None else None)
              for before, after in changes]
    return index_rows(placed), count_changes(counts, placed)


def index_rows(changes: Iterable[tuple[Placement | None, Placement | None]]) -> list[tuple[str, Entry | None]]:
    """The index rows to write for creatives moving from `before` to `after` placements, in order:
    `(key, entry)` for a new position (or a position whose entry changed), `(key, None)` (a
    tombstone) for a position left. Unchanged rows are not rewritten; a later change of the same
    creative wins over an earlier one."""
    rows: dict[str, Entry | None] = {}
    for before, after in changes:
        old = before.keys if before is not None else {}
        new = after.keys if after is not None else {}
        same_entry = before is not None and after is not None and before.entry == after.entry
        for field, key in old.items():
            if new.get(field) != key:
                rows[key] = None
        for field, key in new.items():
            if old.get(field) != key or not same_entry:
                rows[key] = after.entry
    return list(rows.items())


# -- walks of an account in a sort order --------------------------------------------------------------
#: One account's rows of a stored order from a position (inclusive; None: from the first), as
#: (position, entry, a function reading the creative): what the owner's store reads.
StoredWalk = Callable[[str, bool, "str | None"], Iterator[tuple[str, Any, Callable[[], Any]]]]


def walk(field: str, descending: bool, start: str | None, stored_walk: StoredWalk, counts: Mapping[str, int],
         statuses: Iterable[str] | None = None) -> Iterator[tuple[str, Any, Callable[[], Any] | None]]:
    """An account's creatives in `field`'s order from `start` (inclusive). A walk of another order
    also yields the rows it passes over as (position, None, None): they cost a step of the caller's
    budget, and a cursor may stop there. `statuses`: the only statuses wanted (None: all but
    archived), so that the status walk skips whole groups."""
    if field == "status":
        yield from _by_status(descending, start, stored_walk, counts, statuses)
    elif field == "assignment_count":
        yield from _by_assignments(descending, start, stored_walk)
    else:
        yield from stored_walk(field, descending, start)


def _by_status(descending: bool, start: str | None, stored_walk: StoredWalk, counts: Mapping[str, int],
               statuses: Iterable[str] | None) -> Iterator[tuple[str, Any, Callable[[], Any] | None]]:
    groups: dict[str, int] = {}
    for bucket, count in counts.items():
        status = bucket.split("|", 1)[0]
        groups[status] = groups.get(status, 0) + count
    wanted = set(statuses) if statuses else {s for s in groups if s != "archived"}
    width = 2 * _STATUS_BYTES
    for status in sorted(groups, key=lambda s: _text(s, _STATUS_BYTES), reverse=descending):
        head, inner = _text(status, _STATUS_BYTES), None
        if status not in wanted:
            continue
        if start is not None:
            if (head > start[:width]) if descending else (head < start[:width]):
                continue  # a group the cursor has left behind
            inner = start[width:] if head == start[:width] else None
        left = groups[status] if inner is None else None  # a whole group ends at its last member
        for position, entry, read in stored_walk(_CREATION, descending, inner):
            if entry.status != status:
                yield head + position, None, None
                continue
            yield head + position, entry, read
            if left is not None:
                left -= 1
                if left == 0:
                    break


def _by_assignments(descending: bool, start: str | None, stored_walk: StoredWalk
                    ) -> Iterator[tuple[str, Any, Callable[[], Any] | None]]:
    def unassigned() -> Iterator[tuple[str, Any, Callable[[], Any] | None]]:
        if start is not None and start[:8] != _UNASSIGNED:
            if not descending:
                return  # ascending, the cursor is already among the assigned
            inner = None
        else:
            inner = start[8:] if start is not None else None
        for position, entry, read in stored_walk(_CREATION, descending, inner):
            if entry.assigned:
                yield _UNASSIGNED + position, None, None
            else:
                yield _UNASSIGNED + position, entry, read

    if descending:
        yield from stored_walk("assignment_count", True, start)
        yield from unassigned()
    else:
        yield from unassigned()
        yield from stored_walk("assignment_count", False, start)


# -- per-account counts (what a list's totals and summaries read instead of the library) -------------
def count_key(stored: StoredCreative, creative: Mapping[str, Any] | None = None) -> str:
    """The bucket a creative is counted in: `status|format_kind|shown format` (the kind, else the
    format id, as the format summary shows it)."""
    creative = creative if creative is not None else json.loads(stored.creative_json)
    kind, format_id = creative.get("format_kind") or "", creative.get("format_id")
    shown = kind or (format_id.get("id") if isinstance(format_id, Mapping) else format_id) or "unknown"
    return f"{stored.status}|{kind}|{shown}"


def count_changes(counts: Mapping[str, int], changes: Iterable[tuple[Placement | None, Placement | None]]) -> dict[str, int]:
    """`counts` after creatives moved from `before` to `after` placements (empty buckets disappear)."""
    updated = dict(counts)
    for before, after in changes:
        if before is not None:
            updated[before.bucket] = updated.get(before.bucket, 0) - 1
        if after is not None:
            updated[after.bucket] = updated.get(after.bucket, 0) + 1
    return {k: v for k, v in updated.items() if v > 0}


def summaries(counts: Mapping[str, int], statuses: Iterable[str] | None = None,
              format_kinds: Iterable[str] | None = None) -> tuple[int, dict[str, int], dict[str, int]]:
    """Total, status summary and format summary of the creatives of `counts` that the status and
    format-kind filters select (no status filter: every status but archived, as lists show)."""
    wanted_status = set(statuses) if statuses else None
    wanted_kinds = set(format_kinds) if format_kinds else None
    total, by_status, by_format = 0, {}, {}
    for bucket, count in counts.items():
        status, kind, shown = bucket.split("|", 2)
        if (status not in wanted_status) if wanted_status else status == "archived":
            continue
        if wanted_kinds is not None and kind not in wanted_kinds:
            continue
        total += count
        by_status[status] = by_status.get(status, 0) + count
        by_format[shown] = by_format.get(shown, 0) + count
    return total, by_status, by_format
