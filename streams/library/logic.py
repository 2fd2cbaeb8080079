"""The creative library's upsert semantics, as pure functions (no I/O, no clock: `now` is passed in).

A creative's fields are either content (assets, format...: a change means sales agents must get
the new version) or metadata (name, tags...: no re-sync). Redelivery after a crash is harmless:
each stored creative keeps the source offset of the command that last changed it and its last
few changes, so a redelivered command re-emits exactly its original event, and a command older
than the creative's state is never applied again.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
import json
from typing import Any

from topics.codec import to_json
from topics.events import ChangeKind, CreativeChanged, RecentChange, StoredCreative

#: Fields that describe or place a creative without changing what sales agents serve.
METADATA_FIELDS = frozenset({
    "name", "tags", "weight", "placement_refs", "placement_ids", "industry_identifiers", "provenance", "rights", "status",
})
IDENTITY_FIELDS = frozenset({"creative_id"})
#: Changes remembered per creative for exact replays; redeliveries span at most the commits
#: not yet made (about one commit interval of commands), far fewer per creative than this.
RECENT_CHANGES = 8


@dataclass(frozen=True)
class CreativeOutcome:
    creative_id: str
    action: str  # created | updated | unchanged | failed (AdCP per-creative action)
    changes: tuple[str, ...] = ()
    errors: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class LibraryDecision:
    outcomes: list[CreativeOutcome] = field(default_factory=list)
    writes: list[StoredCreative] = field(default_factory=list)
    events: list[CreativeChanged] = field(default_factory=list)


def creative_key(account_id: str, creative_id: str) -> str:
    return f"{account_id}/{creative_id}"


def digest(value: Any) -> str:
    return hashlib.sha256(to_json(value).encode()).hexdigest()


def split_creative(creative: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(content, metadata) parts of an AdCP creative; unknown fields count as content."""
    content = {k: v for k, v in creative.items() if k not in METADATA_FIELDS and k not in IDENTITY_FIELDS}
    metadata = {k: v for k, v in creative.items() if k in METADATA_FIELDS}
    return content, metadata


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if k not in IDENTITY_FIELDS and before.get(k) != after.get(k))


def format_ref(creative: Mapping[str, Any]) -> str | None:
    """`agent_url#id` of a creative's (deprecated) format_id, which may be an object or a plain id."""
    format_id = creative.get("format_id")
    if isinstance(format_id, Mapping):
        return f"{format_id.get('agent_url', '')}#{format_id.get('id', '')}"
    return str(format_id) if format_id else None


_ACTION_OF_CHANGE = {ChangeKind.CREATED: "created", ChangeKind.CONTENT: "updated", ChangeKind.METADATA: "updated"}


def event_for(stored: StoredCreative, change: ChangeKind, fields: list[str], command_id: str) -> CreativeChanged:
    creative = json.loads(stored.creative_json)
    return CreativeChanged(
        event_id=digest([command_id, stored.account_id, stored.creative_id])[:32],
        account_id=stored.account_id,
        creative_id=stored.creative_id,
        change=change,
        changed_fields=fields,
        content_version=stored.content_version,
        content_hash=stored.content_hash,
        name=creative.get("name"),
        format_id=format_ref(creative),
        format_kind=creative.get("format_kind"),
        status=stored.status,
        tags=[str(t) for t in creative.get("tags") or []],
        creative_json=stored.creative_json,
        command_id=command_id,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


def apply_upserts(
    *,
    account_id: str,
    command_id: str,
    creatives: list[Mapping[str, Any]],
    existing: Mapping[str, StoredCreative | None],
    now: datetime,
    source_offset: int = -1,
) -> LibraryDecision:
    """Upsert `creatives` (by creative_id) into an account's library whose current rows are `existing`.

    `source_offset` is the command's offset in its partition (-1: unknown, no replay detection
    by offset); with it, a redelivered command is recognised even after later commands.
    """
    decision = LibraryDecision()
    current = dict(existing)
    for creative in creatives:
        creative_id = str(creative["creative_id"])
        previous = current.get(creative_id)
        if previous is not None:
            earlier = next((c for c in previous.recent_changes if c.command_id == command_id), None)
            if earlier is not None:
                _replay(decision, previous, earlier)  # redelivered: same answer, same event
                continue
            if 0 <= source_offset <= previous.last_source_offset:
                # Older than the creative's state and beyond the remembered changes: already applied.
                decision.outcomes.append(CreativeOutcome(creative_id, "unchanged"))
                continue
        content, metadata = split_creative(creative)
        content_hash, metadata_hash = digest(content), digest(metadata)
        if previous is None:
            change, fields, version, created_at = ChangeKind.CREATED, [], 1, now
        elif content_hash != previous.content_hash:
            change, version, created_at = ChangeKind.CONTENT, previous.content_version + 1, previous.created_at
            fields = changed_fields(json.loads(previous.creative_json), creative)
        elif metadata_hash != previous.metadata_hash:
            change, version, created_at = ChangeKind.METADATA, previous.content_version, previous.created_at
            fields = changed_fields(json.loads(previous.creative_json), creative)
        else:
            decision.outcomes.append(CreativeOutcome(creative_id, "unchanged"))
            continue
        stored = StoredCreative(
            account_id=account_id, creative_id=creative_id, content_version=version, content_hash=content_hash,
            metadata_hash=metadata_hash, creative_json=to_json(creative), status=str(creative.get("status") or "approved"),
            created_at=created_at, updated_at=now, last_command_id=command_id, last_change=change.value,
            last_changed_fields=fields, last_source_offset=max(source_offset, previous.last_source_offset if previous else -1),
        )
        remembered = RecentChange(command_id=command_id, source_offset=source_offset, change=change.value,
                                  changed_fields=fields, content_version=version, content_hash=content_hash,
                                  creative_json=stored.creative_json, status=stored.status, updated_at=now)
        history = [*(previous.recent_changes if previous else []), remembered][-RECENT_CHANGES:]
        stored = stored.model_copy(update={"recent_changes": history})
        current[creative_id] = stored
        decision.writes.append(stored)
        decision.events.append(event_for(stored, change, fields, command_id))
        decision.outcomes.append(CreativeOutcome(creative_id, _ACTION_OF_CHANGE[change], tuple(fields)))
    return decision


def _replay(decision: LibraryDecision, current: StoredCreative, earlier: RecentChange) -> None:
    """The outcome and event `earlier` produced the first time, identical."""
    change = ChangeKind(earlier.change) if earlier.change in ChangeKind.__members__ else ChangeKind.UNKNOWN
    decision.outcomes.append(
        CreativeOutcome(current.creative_id, _ACTION_OF_CHANGE.get(change, "unchanged"), tuple(earlier.changed_fields)))
    if change in _ACTION_OF_CHANGE:
        as_it_was = current.model_copy(update={
            "content_version": earlier.content_version, "content_hash": earlier.content_hash,
            "creative_json": earlier.creative_json, "status": earlier.status, "updated_at": earlier.updated_at})
        decision.events.append(event_for(as_it_was, change, list(earlier.changed_fields), earlier.command_id))


def sync_response(outcomes: list[CreativeOutcome]) -> dict[str, Any]:
    """The AdCP sync_creatives success body for `outcomes`."""
    creatives = []
    for outcome in outcomes:
        item: dict[str, Any] = {"creative_id": outcome.creative_id, "action": outcome.action}
        if outcome.changes:
            item["changes"] = list(outcome.changes)
        if outcome.errors:
            item["errors"] = list(outcome.errors)
        creatives.append(item)
    return {"creatives": creatives}
