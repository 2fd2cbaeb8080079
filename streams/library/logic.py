"""The creative library's upsert semantics, as pure functions (no I/O, no clock: `now` is passed in).

A creative's fields are either content (assets, format...: a change means sales agents must get
the new version) or metadata (name, tags...: no re-sync). Redelivery after a crash is harmless:
each stored creative keeps the source offset of the command that last changed it and its last
few changes, so a redelivered command re-emits exactly its original event, and a command older
than the creative's state is never applied again.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
import json
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from streams.library.requests import Problem, SyncRequest
from topics.codec import to_json, to_json_bytes
from topics.events import ChangeKind, CreativeChanged, IdempotencyRecord, RecentChange, StoredCreative

#: Fields that describe or place a creative without changing what sales agents serve.
METADATA_FIELDS = frozenset({
    "name", "tags", "weight", "placement_refs", "placement_ids", "industry_identifiers", "provenance", "rights", "status",
})
IDENTITY_FIELDS = frozenset({"creative_id"})
#: Changes remembered per creative for exact replays; redeliveries span at most the commits
#: not yet made (about one commit interval of commands), far fewer per creative than this.
RECENT_CHANGES = 8
#: Bytes of earlier versions' JSON those changes keep at most (a large creative remembers fewer).
RECENT_BYTES = 64 * 1024


@dataclass(frozen=True)
class CreativeOutcome:
    creative_id: str
    action: str  # created | updated | unchanged | failed | deleted (AdCP per-creative action)
    changes: tuple[str, ...] = ()
    errors: tuple[dict[str, Any], ...] = ()
    assigned_to: tuple[str, ...] | None = None  # set when assignments were requested for it
    assignment_errors: dict[str, str] | None = None


@dataclass
class LibraryDecision:
    outcomes: list[CreativeOutcome] = field(default_factory=list)
    writes: list[StoredCreative] = field(default_factory=list)
    events: list[CreativeChanged] = field(default_factory=list)
    #: the AdCP error branch: when set, nothing above is applied
    errors: list[dict[str, Any]] = field(default_factory=list)


def creative_key(account_id: str, creative_id: str) -> str:
    return f"{account_id}/{creative_id}"


def digest(value: Any) -> str:
    return hashlib.sha256(to_json_bytes(value)).hexdigest()


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


_ACTION_OF_CHANGE = {ChangeKind.CREATED: "created", ChangeKind.CONTENT: "updated", ChangeKind.METADATA: "updated",
                     ChangeKind.ARCHIVED: "deleted"}


def event_for(stored: StoredCreative, change: ChangeKind, fields: list[str], command_id: str,
              creative: Mapping[str, Any] | None = None) -> CreativeChanged:
    """The event of `stored`'s change; `creative` is its creative_json parsed, when the caller has it."""
    creative = creative if creative is not None else json.loads(stored.creative_json)
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
        assigned_to=list(stored.assigned_to),
        assigned_at=dict(stored.assigned_at),
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
    decision: LibraryDecision | None = None,
    assigned: Mapping[str, list[str]] | None = None,
    archive: bool = False,
) -> LibraryDecision:
    """Upsert `creatives` (by creative_id) into an account's library whose current rows are `existing`.

    `source_offset` is the command's offset in its partition (-1: unknown, no replay detection
    by offset); with it, a redelivered command is recognised even after later commands.
    `assigned` gives the new package assignments of some creatives (metadata); `archive` marks
    the given creatives archived (delete_missing).
    """
    decision = decision if decision is not None else LibraryDecision()
    assigned = assigned or {}
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
        assigned_to = sorted(assigned.get(creative_id, previous.assigned_to if previous else []))
        # Usable once stored (sales agents review their own copies); a buyer-set status (generative
        # flows) is kept; an archived creative sent again comes back.
        status = "archived" if archive else str(creative.get("status") or "approved")
        content, metadata = split_creative(creative)
        content_hash = digest(content)
        metadata_hash = digest([metadata, assigned_to, status])
        if archive:
            if previous is None or previous.status == "archived":
                continue
            change, fields, version, created_at = ChangeKind.ARCHIVED, ["status"], previous.content_version, previous.created_at
        elif previous is None:
            change, fields, version, created_at = ChangeKind.CREATED, [], 1, now
        elif content_hash != previous.content_hash:
            change, version, created_at = ChangeKind.CONTENT, previous.content_version + 1, previous.created_at
            fields = changed_fields(json.loads(previous.creative_json), creative)
        elif metadata_hash != previous.metadata_hash:
            change, version, created_at = ChangeKind.METADATA, previous.content_version, previous.created_at
            fields = changed_fields(json.loads(previous.creative_json), creative)
            fields += ["assigned_to"] * (assigned_to != sorted(previous.assigned_to))
            fields += ["status"] * (status != previous.status)
        else:
            decision.outcomes.append(CreativeOutcome(creative_id, "unchanged"))
            continue
        creative_json = to_json(creative)
        remembered = RecentChange(command_id=command_id, source_offset=source_offset, change=change.value,
                                  changed_fields=fields, content_version=version, content_hash=content_hash,
                                  creative_json="", status=status, updated_at=now)  # "": the row's own
        stored = StoredCreative(
            account_id=account_id, creative_id=creative_id, content_version=version, content_hash=content_hash,
            metadata_hash=metadata_hash, creative_json=creative_json, status=status, assigned_to=assigned_to,
            assigned_at=_assignment_dates(assigned_to, previous, now),
            created_at=created_at, updated_at=now, last_command_id=command_id, last_change=change.value,
            last_changed_fields=fields, last_source_offset=max(source_offset, previous.last_source_offset if previous else -1),
            recent_changes=remember(previous, remembered),
        )
        current[creative_id] = stored
        decision.writes.append(stored)
        decision.events.append(event_for(stored, change, fields, command_id, creative=creative))
        decision.outcomes.append(CreativeOutcome(creative_id, _ACTION_OF_CHANGE[change], tuple(fields)))
    return decision


def concerns_status(change: CreativeChanged) -> bool:
    """Whether the status processor hears of a change (topic content_changes): a content change (it
    re-syncs the creative where it is synced), an archiving, and a status change (a creative brought
    back) (both start or end the retention of its status rows). Creations never: they have no status."""
    return change.change in (ChangeKind.CONTENT, ChangeKind.ARCHIVED) or "status" in change.changed_fields


def _assignment_dates(assigned_to: list[str], previous: StoredCreative | None, now: datetime) -> dict[str, datetime]:
    """When each package was assigned: kept for packages already there, `now` for new ones."""
    before = previous.assigned_at if previous is not None else {}
    return {package: before.get(package, now) for package in assigned_to}


def remember(previous: StoredCreative | None, change: RecentChange) -> list[RecentChange]:
    """The changes a creative remembers after `change`: at most RECENT_CHANGES, and at most
    RECENT_BYTES of earlier versions' JSON. The latest change's JSON is the row's own (kept once,
    as ""): the one before takes the JSON it had from the previous row."""
    if previous is None:
        return [change]
    earlier = [c if c.creative_json else c.model_copy(update={"creative_json": previous.creative_json})
               for c in previous.recent_changes]
    kept, size = [change], 0
    for c in reversed(earlier[-(RECENT_CHANGES - 1):]):
        size += len(c.creative_json)
        if size > RECENT_BYTES:
            break
        kept.append(c)
    return kept[::-1]


def _replay(decision: LibraryDecision, current: StoredCreative, earlier: RecentChange) -> None:
    """The outcome and event `earlier` produced the first time, identical."""
    change = ChangeKind(earlier.change) if earlier.change in ChangeKind.__members__ else ChangeKind.UNKNOWN
    decision.outcomes.append(
        CreativeOutcome(current.creative_id, _ACTION_OF_CHANGE.get(change, "unchanged"), tuple(earlier.changed_fields)))
    if change in _ACTION_OF_CHANGE:
        as_it_was = current.model_copy(update={
            "content_version": earlier.content_version, "content_hash": earlier.content_hash,
            "creative_json": earlier.creative_json or current.creative_json, "status": earlier.status,
            "updated_at": earlier.updated_at})
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
        if outcome.assigned_to is not None:
            item["assigned_to"] = list(outcome.assigned_to)
        if outcome.assignment_errors:
            item["assignment_errors"] = dict(outcome.assignment_errors)
        creatives.append(item)
    return {"creatives": creatives}


# -- sync_creatives: a whole request ------------------------------------------------------------
def apply_sync(
    request: SyncRequest,
    *,
    command_id: str,
    existing: Mapping[str, StoredCreative | None],
    library_ids: Iterable[str] = (),
    now: datetime,
    source_offset: int = -1,
    validate: Callable[[Mapping[str, Any]], list[Problem]] | None = None,
) -> LibraryDecision:
    """AdCP 3.2 sync_creatives against one account's library (see DESIGN.md, Protocol notes).

    `existing` holds the current row of every creative the request names (and, for
    `delete_missing`, of every id in `library_ids`, the account's whole library). `validate`
    checks one complete creative (patched creatives are checked after merging).
    Strict mode: any invalid creative → the error branch and nothing applied. Lenient: invalid
    creatives come back `failed`, the rest is applied.
    """
    decision = LibraryDecision()
    scope = set(request.creative_ids) if request.creative_ids is not None else None
    upserts: list[dict[str, Any]] = []
    failed: dict[str, list[Problem]] = {}
    for index, creative in enumerate(request.creatives):
        creative_id = str(creative.get("creative_id"))
        if scope is not None and creative_id not in scope:
            continue  # creative_ids scoping: the rest of the payload is left alone
        problems = list(request.invalid.get(index, []))
        if not problems and request.patch:
            previous = existing.get(creative_id)
            creative = {**json.loads(previous.creative_json), **creative} if previous is not None else creative
            problems = [replace(p, field=f"creatives[{index}].{p.field}" if p.field else f"creatives[{index}]")
                        for p in (validate(creative) if validate else [])]
        if problems:
            failed[creative_id] = problems
        else:
            upserts.append(creative)
    if failed and request.validation_mode == "strict":
        decision.errors = [p.as_adcp() for problems in failed.values() for p in problems]
        return decision

    assigned, assignment_errors = _assignments(request, existing, {c["creative_id"] for c in upserts})
    assign_only = [json.loads(s.creative_json) for cid, s in existing.items()
                   if s is not None and cid in assigned and cid not in {c["creative_id"] for c in upserts}]
    apply_upserts(account_id=request.account_id, command_id=command_id, creatives=[*upserts, *assign_only],
                  existing=existing, now=now, source_offset=source_offset, decision=decision, assigned=assigned)
    if request.delete_missing:
        named = {str(c.get("creative_id")) for c in request.creatives}
        missing = [json.loads(s.creative_json) for cid in library_ids
                   if cid not in named and (s := existing.get(cid)) is not None and s.status != "archived"]
        apply_upserts(account_id=request.account_id, command_id=command_id, creatives=missing, existing=existing,
                      now=now, source_offset=source_offset, decision=decision, archive=True)
    by_id = {o.creative_id: o for o in decision.outcomes}
    for creative_id, problems in failed.items():
        by_id[creative_id] = CreativeOutcome(creative_id, "failed", errors=tuple(p.as_adcp() for p in problems))
    for creative_id in set(assigned) | set(assignment_errors):
        outcome = by_id.get(creative_id) or CreativeOutcome(creative_id, "unchanged")
        by_id[creative_id] = replace(outcome, assigned_to=tuple(assigned.get(creative_id, ())) or None,
                                     assignment_errors=assignment_errors.get(creative_id) or None)
    order = [str(c.get("creative_id")) for c in request.creatives] + list(by_id)
    decision.outcomes = [by_id[cid] for cid in dict.fromkeys(order) if cid in by_id]
    return decision


def buyer_ref_of(stored: StoredCreative) -> Any:
    return json.loads(stored.creative_json).get("buyer_ref")


def named_ids(request: SyncRequest, library_ids: Iterable[str] = ()) -> set[str]:
    """The creatives whose current rows `apply_sync` needs: those the request names or assigns,
    and for delete_missing the account's whole library (`library_ids`)."""
    wanted = {str(c.get("creative_id")) for c in request.creatives}
    wanted |= {str(a.get("creative_id")) for a in [*request.assignments, *request.assignment_operations]}
    return wanted | set(library_ids)


def _assignments(request: SyncRequest, existing: Mapping[str, StoredCreative | None],
                 upserted: set[str]) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """New package lists per creative from `assignments` (additive) or `assignment_operations`
    (ordered assign/unassign), and errors per creative and package for unknown creatives."""
    packages: dict[str, list[str]] = {}
    errors: dict[str, dict[str, str]] = {}

    def current(creative_id: str) -> list[str] | None:
        if creative_id not in packages:
            stored = existing.get(creative_id)
            if stored is None and creative_id not in upserted:
                return None
            packages[creative_id] = list(stored.assigned_to) if stored is not None else []
        return packages[creative_id]

    operations = [{"op": "assign", **a} for a in request.assignments] + [dict(o) for o in request.assignment_operations]
    for operation in operations:
        creative_id, package_id = str(operation.get("creative_id")), str(operation.get("package_id"))
        assigned = current(creative_id)
        if assigned is None:
            errors.setdefault(creative_id, {})[package_id] = f"Creative {creative_id} is not in this library."
            continue
        op = str(operation.get("op") or operation.get("operation") or operation.get("action") or "assign")
        if op in ("unassign", "remove") and package_id in assigned:
            assigned.remove(package_id)
        elif op not in ("unassign", "remove") and package_id not in assigned:
            assigned.append(package_id)
    return packages, errors


def sync_response_for(decision: LibraryDecision, *, dry_run: bool = False) -> dict[str, Any]:
    """The AdCP body for `decision`: the error branch, or the success branch."""
    if decision.errors:
        return {"errors": decision.errors}
    body = sync_response(decision.outcomes)
    if dry_run:
        body["dry_run"] = True
    return body


# -- idempotency --------------------------------------------------------------------------------
#: How long an idempotency key is remembered (declared in get_adcp_capabilities).
REPLAY_TTL = timedelta(hours=24)


class Verdict(StrEnum):
    NEW = "new"  # apply it
    REDELIVERY = "redelivery"  # the same command again (at-least-once): apply again, same answer and events
    REPLAY = "replay"  # the client retried the same payload: the stored answer, replayed: true
    CONFLICT = "conflict"  # another payload under a used key: IDEMPOTENCY_CONFLICT


def idempotency_verdict(record: IdempotencyRecord | None, *, request_hash: str, source_offset: int, now: datetime,
                        ttl: timedelta = REPLAY_TTL) -> Verdict:
    if record is None or now - record.recorded_at > ttl:
        return Verdict.NEW
    if source_offset >= 0 and record.source_offset == source_offset:
        return Verdict.REDELIVERY
    return Verdict.REPLAY if record.payload_hash == request_hash else Verdict.CONFLICT


def conflict_response(idempotency_key: str) -> dict[str, Any]:
    return {"errors": [{"code": "IDEMPOTENCY_CONFLICT", "field": "idempotency_key", "recovery": "correctable",
                        "message": "This idempotency_key was already used with a different request.",
                        "suggestion": "Use a fresh idempotency_key for a different request."}]}


def replayed(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "replayed": True}


def stored_from_change(change: CreativeChanged) -> StoredCreative:
    """The library row a creative-changed event describes (what a read model needs to rehearse a
    request: dry_run computes on the gateway's copy of the library)."""
    creative = json.loads(change.creative_json)
    _, metadata = split_creative(creative)
    assigned_to = sorted(change.assigned_to)
    return StoredCreative(
        account_id=change.account_id, creative_id=change.creative_id, content_version=change.content_version,
        content_hash=change.content_hash, metadata_hash=digest([metadata, assigned_to, change.status]),
        creative_json=change.creative_json, status=change.status, created_at=change.created_at,
        updated_at=change.updated_at, last_command_id=change.command_id, assigned_to=assigned_to,
        assigned_at=dict(change.assigned_at))
