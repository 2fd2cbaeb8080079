"""An account's notifications as their owner keeps and reads them, in pure functions: the rows
(first seen, with their read and acknowledged flags), the index the store derives from them
(newest first), the account's unread counts, and the queries (filters, cursor pages, campaign
counts) that walk the index; retention (streams.retention) cuts its front.

Why an index of its own: list_notifications wants the newest page of one account (often unread
only, or of one campaign); a walk of the account's index, newest first, reads the page and what
the filters pass over, from entries that hold every filtered field, so that only the page's rows
are decoded. The `since` filter ends the walk.

No I/O: walks come in as iterators of (index key, entry).
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.retention import MOMENT_WIDTH, moment
from streams.stores import moved_rows
from topics.events import Notification, NotificationOperation, StoredNotification

SEP = "\x1f"  # between a key's parts; never in an id (ids with control characters are refused)
_HIGHEST = "\x7f"  # above every character of a key's tail (hex digits and ids)
_WIDTH = MOMENT_WIDTH  # hex digits of a creation moment (milliseconds)


def row_key(account_id: str, notification_id: str) -> str:
    """The notifications table's key."""
    return f"{account_id}/{notification_id}"


def account_of(key: str) -> str:
    return key.rsplit("/", 1)[0]


# -- the index ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """An index row: the notification, and every field a filter looks at."""

    notification_id: str
    type: str
    urgency: str  # LOW, MEDIUM, HIGH
    read: bool
    acknowledged: bool
    campaign_id: str | None
    creative_id: str | None
    sales_agent_id: str | None

    def as_bytes(self) -> bytes:
        """Not Avro: a derived row of the owner's store only, never on a topic (a change of this
        format changes nothing stored: the index is derived again from the rows on restore)."""
        return SEP.join((self.notification_id, self.type, self.urgency, "1" if self.read else "",
                         "1" if self.acknowledged else "", self.campaign_id or "", self.creative_id or "",
                         self.sales_agent_id or "")).encode()

    @classmethod
    def of_bytes(cls, raw: bytes) -> Entry:
        note_id, kind, urgency, read, acknowledged, campaign, creative, agent = raw.decode().split(SEP)
        return cls(note_id, kind, urgency, bool(read), bool(acknowledged), campaign or None, creative or None, agent or None)

    @classmethod
    def of(cls, row: StoredNotification) -> Entry:
        return cls(row.notification_id, row.type, row.urgency.value, row.read, row.acknowledged, row.campaign_id,
                   row.creative_id, row.sales_agent_id)


def prefix(account_id: str) -> str:
    return f"{account_id}{SEP}"


def position(row: StoredNotification) -> str:
    """Where a notification stands in its account's order: creation, then id."""
    return f"{moment(row.created_at)}{SEP}{row.notification_id}"


def index_key(row: StoredNotification) -> str:
    return prefix(row.account_id) + position(row)


def created_of(position_: str) -> datetime:
    return datetime.fromtimestamp(int(position_[:_WIDTH], 16) / 1000, UTC)


def bounds(account_id: str, after: str | None = None) -> tuple[str, str]:
    """The index keys of an account, newest first from before `after` (a position) if given."""
    start = prefix(account_id)
    return start, start + (after if after is not None else _HIGHEST)


def counted(row: StoredNotification) -> dict[str, int]:
    unread = not row.read
    return {"total": 1, "unread": int(unread), "high_priority": int(unread and row.urgency.value == "HIGH")}


class NotificationIndex:
    """The notifications table's derivation (streams.stores): one index row per notification and
    the account's counts (total, unread, unread of high urgency)."""

    account_of = staticmethod(account_of)
    entry_of = staticmethod(Entry.of_bytes)

    @staticmethod
    def entry_bytes(entry: Entry) -> bytes:
        return entry.as_bytes()

    @staticmethod
    def moved(counts: Mapping[str, int], changes: Iterable[tuple[StoredNotification | None, StoredNotification | None]]
              ) -> tuple[list[tuple[str, Entry | None]], dict[str, int]]:
        return moved_rows(counts, changes, lambda row: {index_key(row): Entry.of(row)}, counted)


# -- rows -----------------------------------------------------------------------------------------
def received(current: StoredNotification | None, note: Notification) -> StoredNotification | None:
    """The row after `note` arrives (None: nothing changes). A notification is one per logical
    event (deterministic id): one that comes again (a replay, a retried transition) keeps the
    moment it was first seen and what people did with it."""
    fields = dict(note)
    if current is None:  # (most: built without validating again what the codec just validated)
        return StoredNotification.model_construct(**fields, read=False, acknowledged=False, flags_updated_at=None)
    updated = current.model_copy(update={k: v for k, v in fields.items() if k != "created_at"})
    return None if updated == current else updated


def flagged(row: StoredNotification, operation: NotificationOperation, now: datetime) -> StoredNotification | None:
    """The row after `operation` (None: nothing changes). Acknowledging reads it too."""
    read = True
    acknowledged = row.acknowledged or operation is NotificationOperation.ACKNOWLEDGE
    if (row.read, row.acknowledged) == (read, acknowledged):
        return None
    return row.model_copy(update={"read": read, "acknowledged": acknowledged, "flags_updated_at": now})


# -- queries --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    types: frozenset[str] = frozenset()
    urgency: frozenset[str] = frozenset()  # low, medium, high
    acknowledged: bool | None = None
    unread_only: bool = False
    campaign_id: str | None = None
    campaign_creatives: frozenset[str] = frozenset()  # a creative notification belongs to its creative's campaigns
    creative_id: str | None = None
    since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        for name in ("types", "urgency", "campaign_creatives"):
            body[name] = sorted(body[name])
        body["since"] = self.since.isoformat() if self.since else None
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Filters:
        since = body.get("since")
        return cls(types=frozenset(body.get("types") or ()), urgency=frozenset(body.get("urgency") or ()),
                   acknowledged=body.get("acknowledged"), unread_only=bool(body.get("unread_only")),
                   campaign_id=body.get("campaign_id"), campaign_creatives=frozenset(body.get("campaign_creatives") or ()),
                   creative_id=body.get("creative_id"), since=datetime.fromisoformat(since) if since else None)


def matches(entry: Entry, f: Filters) -> bool:
    return ((not f.types or entry.type in f.types) and (not f.urgency or entry.urgency.lower() in f.urgency)
            and (f.acknowledged is None or entry.acknowledged == f.acknowledged) and (not f.unread_only or not entry.read)
            and (f.campaign_id is None or entry.campaign_id == f.campaign_id
                 or (entry.campaign_id is None and entry.creative_id in f.campaign_creatives))
            and (f.creative_id is None or entry.creative_id == f.creative_id))


class BadCursor(ValueError):
    """A cursor this API did not give."""


def cursor_of(position_: str) -> str:
    return base64.urlsafe_b64encode(position_.encode()).decode()


def position_of(cursor: str) -> str:
    try:
        position_ = base64.urlsafe_b64decode(cursor.encode()).decode()
        int(position_[:_WIDTH], 16)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise BadCursor(cursor) from None
    if len(position_) <= _WIDTH + 1 or position_[_WIDTH] != SEP:
        raise BadCursor(cursor)
    return position_


def newest_first(walk: Iterable[tuple[str, Entry]], f: Filters) -> Iterator[tuple[str, Entry]]:
    """The matching entries of an account's walk, newest first, as (position, entry); `since` ends it."""
    for key, entry in walk:
        position_ = key.split(SEP, 1)[1]
        if f.since is not None and created_of(position_) < f.since:
            return
        if matches(entry, f):
            yield position_, entry


@dataclass
class Page:
    entries: list[tuple[str, Entry]] = field(default_factory=list)
    cursor: str | None = None  # of the next page


def page(walk: Iterable[tuple[str, Entry]], f: Filters, max_results: int, cursor: str | None) -> Page:
    """One page of an account's notifications, newest first, after `cursor` (the walk starts at
    the cursor's position, see `bounds`; the position itself was the previous page's last)."""
    after = position_of(cursor) if cursor else None
    found = Page()
    for position_, entry in newest_first(walk, f):
        if position_ == after:
            continue
        if len(found.entries) == max_results:
            found.cursor = cursor_of(found.entries[-1][0])
            break
        found.entries.append((position_, entry))
    return found


@dataclass(frozen=True)
class CampaignScope:
    """What belongs to a campaign for its counts: its own notifications, its creatives', and its
    tactics' sales agents' (those about an agent, not a creative)."""

    campaign_id: str
    creatives: frozenset[str]
    agents: frozenset[str]

    def holds(self, entry: Entry) -> bool:
        if entry.campaign_id is not None:
            return entry.campaign_id == self.campaign_id
        if entry.creative_id is not None:
            return entry.creative_id in self.creatives
        return entry.sales_agent_id in self.agents


def campaign_counts(walk: Iterable[tuple[str, Entry]], scopes: list[CampaignScope]) -> dict[str, dict[str, int]]:
    """Each campaign's unread and unread high-urgency notifications (the brief's shape)."""
    counts = {s.campaign_id: {"unread": 0, "highPriority": 0} for s in scopes}
    for _, entry in walk:
        if entry.read:
            continue
        for scope in scopes:
            if scope.holds(entry):
                counts[scope.campaign_id]["unread"] += 1
                counts[scope.campaign_id]["highPriority"] += entry.urgency == "HIGH"
    return counts
