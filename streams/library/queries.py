"""list_creatives as pure functions: a query parsed once, a page of each account computed by the
worker that owns it (a walk of the account's index range from the cursor, `streams.library.index`),
and the pages of the accounts asked for merged into the AdCP 3.2 list-creatives response.

A page costs the page: the walk stops after `size + 1` matches, or after a budget of rows examined
(a very selective filter then returns a short page with a cursor to go on). Totals and summaries
come from per-account counts when the filters are statuses and format kinds only; other filters
report the matches counted so far (see README, "Reads").
"""
from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field as dataclass_field
from datetime import datetime
from typing import Any

from streams.library import index
from streams.library.logic import event_for, stored_from_change
from topics.events import ChangeKind, CreativeChanged, StoredCreative

MAX_PAGE, DEFAULT_PAGE = 100, 50
#: What `fields` never drops: the properties list-creatives-response requires of every creative
#: (the official client refuses a whole answer that misses one of them), and its format reference
#: (format_id or format_kind: exactly one is required).
ALWAYS_PROJECTED = ("creative_id", "name", "status", "created_date", "updated_date", "format_id", "format_kind")
#: Rows an account's walk examines at most per request (a filter matching one row in a million
#: answers a short page with a cursor rather than reading the library).
SCAN_BUDGET = 5_000
#: Filters the per-account counts answer exactly (totals and summaries without a walk).
_COUNTED = frozenset({"statuses", "format_kinds", "accounts"})
_LAST_ACCOUNT = "\U0010ffff"


class QueryError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _when(value: Any, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"{field} must be an ISO 8601 date-time.", field) from None
    if moment.tzinfo is None:
        raise QueryError(f"{field} must carry its UTC offset (e.g. 2026-01-01T00:00:00Z).", field)
    return moment


def _format_id(creative: CreativeChanged) -> str | None:
    return creative.format_id.rsplit("#", 1)[-1] if creative.format_id else None


def matches(creative: CreativeChanged, filters: Mapping[str, Any]) -> bool:
    statuses = filters.get("statuses")
    if statuses:
        if creative.status not in statuses:
            return False
    elif creative.status == "archived":  # archived creatives only when asked for
        return False
    tags = set(creative.tags)
    if filters.get("tags") and not set(filters["tags"]) <= tags:
        return False
    if filters.get("tags_any") and not set(filters["tags_any"]) & tags:
        return False
    name = filters.get("name_contains")
    if name and str(name).lower() not in (creative.name or "").lower():
        return False
    if filters.get("creative_ids") and creative.creative_id not in filters["creative_ids"]:
        return False
    for key, attribute, after in (("created_after", "created_at", True), ("created_before", "created_at", False),
                                  ("updated_after", "updated_at", True), ("updated_before", "updated_at", False)):
        if filters.get(key) is not None:
            bound, value = _when(filters[key], f"filters.{key}"), getattr(creative, attribute)
            if (after and value <= bound) or (not after and value >= bound):
                return False
    if filters.get("format_kinds") and creative.format_kind not in filters["format_kinds"]:
        return False
    if filters.get("format_ids"):
        wanted = {f.get("id") if isinstance(f, Mapping) else str(f) for f in filters["format_ids"]}
        if _format_id(creative) not in wanted:
            return False
    if filters.get("assigned_to_packages") and not set(filters["assigned_to_packages"]) & set(creative.assigned_to):
        return False
    if filters.get("unassigned") is True and creative.assigned_to:
        return False
    if filters.get("asset_types") and not set(filters["asset_types"]) & _asset_types(creative):
        return False
    if filters.get("concept_ids") or filters.get("has_variables") is not None:
        body = json.loads(creative.creative_json)
        if filters.get("concept_ids") and body.get("concept_id") not in filters["concept_ids"]:
            return False
        if filters.get("has_variables") is not None and bool(body.get("variables")) != filters["has_variables"]:
            return False
    return True


def _asset_types(creative: CreativeChanged) -> set[str]:
    assets = json.loads(creative.creative_json).get("assets") or {}
    return {a.get("asset_type") for a in assets.values() if isinstance(a, Mapping)} if isinstance(assets, Mapping) else set()


#: The filters `matches` applies: any other filter of the schema is refused, never silently ignored
#: (and `filters_applied` lists only these).
APPLIED_FILTERS = frozenset({"statuses", "tags", "tags_any", "name_contains", "creative_ids", "created_after",
                             "created_before", "updated_after", "updated_before", "format_kinds", "format_ids",
                             "assigned_to_packages", "unassigned", "asset_types", "concept_ids", "has_variables",
                             "accounts"})  # accounts: which libraries are read (the caller selects them)


def _check_filters(filters: Mapping[str, Any]) -> None:
    unsupported = sorted(k for k, v in filters.items() if k not in APPLIED_FILTERS and v not in (None, [], ""))
    if unsupported:
        raise QueryError(f"filters.{unsupported[0]} is not supported by this creative library (supported: "
                         f"{', '.join(sorted(APPLIED_FILTERS))}); leave it out.", f"filters.{unsupported[0]}")


#: Parts of a stored creative shown only when asked for (include_variables).
_ON_REQUEST = ("variables",)


def as_adcp(creative: CreativeChanged, *, include_assignments: bool, include_variables: bool = False,
            account: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.loads(creative.creative_json)
    hidden = ("status",) if include_variables else ("status", *_ON_REQUEST)
    item = {**{k: v for k, v in body.items() if k not in hidden},
            "creative_id": creative.creative_id, "name": creative.name or creative.creative_id, "status": creative.status,
            "created_date": creative.created_at.isoformat(), "updated_date": creative.updated_at.isoformat()}
    if account is not None:
        item["account"] = account
    if include_assignments:
        item["assignments"] = {"assignment_count": len(creative.assigned_to),
                               "assigned_packages": [
                                   {"package_id": p,
                                    "assigned_date": creative.assigned_at.get(p, creative.updated_at).isoformat()}
                                   for p in creative.assigned_to]}
    return item



# -- the query --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageQuery:
    """A list_creatives request as the owners of its accounts need it (and send back and forth)."""

    filters: dict[str, Any]
    field: str
    direction: str
    size: int
    after: tuple[str, str] | None = None  # (position, account) of the last creative already shown
    seen: int = 0  # creatives shown on earlier pages
    include_assignments: bool = False
    include_variables: bool = False

    @property
    def descending(self) -> bool:
        return self.direction == "desc"

    @property
    def fingerprint(self) -> str:
        return json.dumps([self.filters, self.field, self.direction], sort_keys=True, default=str)[:200]

    def as_json(self) -> dict[str, Any]:
        return {"filters": self.filters, "field": self.field, "direction": self.direction, "size": self.size,
                "after": list(self.after) if self.after else None, "seen": self.seen,
                "include_assignments": self.include_assignments, "include_variables": self.include_variables}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PageQuery:
        after = body.get("after")
        return cls(filters=dict(body.get("filters") or {}), field=body["field"], direction=body["direction"],
                   size=int(body["size"]), after=(str(after[0]), str(after[1])) if after else None,
                   seen=int(body.get("seen") or 0), include_assignments=bool(body.get("include_assignments")),
                   include_variables=bool(body.get("include_variables")))


def parse_query(request: Mapping[str, Any]) -> PageQuery:
    """The query of a list_creatives request (QueryError names the field that is wrong)."""
    filters = dict(request.get("filters") or {})
    _check_filters(filters)
    for key in ("created_after", "created_before", "updated_after", "updated_before"):
        if filters.get(key) is not None:
            _when(filters[key], f"filters.{key}")
    sort = request.get("sort") or {}
    field, direction = sort.get("field", "created_date"), sort.get("direction", "desc")
    if field not in index.ORDERS:
        raise QueryError(f"sort.field must be one of {', '.join(index.SORT_FIELDS)}.", "sort.field")
    pagination = request.get("pagination") or {}
    size = pagination.get("max_results", DEFAULT_PAGE)
    if not isinstance(size, int) or not 1 <= size <= MAX_PAGE:
        raise QueryError(f"pagination.max_results must be 1 to {MAX_PAGE}.", "pagination.max_results")
    query = PageQuery(filters=filters, field=field, direction=direction, size=size,
                      include_assignments=bool(request.get("include_assignments")),
                      include_variables=bool(request.get("include_variables")))
    cursor = pagination.get("cursor")
    if not cursor:
        return query
    try:
        tail, account, seen, fingerprint = json.loads(base64.urlsafe_b64decode(str(cursor).encode()))
        if fingerprint != query.fingerprint or not all(isinstance(v, str) for v in (tail, account)) \
                or not isinstance(seen, int) or seen < 0:
            raise ValueError
    except (ValueError, TypeError):
        raise QueryError("The cursor is not valid for this query; start again without it.", "pagination.cursor") from None
    return PageQuery(**{**query.__dict__, "after": (tail, account), "seen": seen})


def _cursor(query: PageQuery, after: tuple[str, str], seen: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([after[0], after[1], seen, query.fingerprint]).encode()).decode()


# -- one account's page, on the worker that owns it ------------------------------------------------
#: The rows of one account in one order, from a position (inclusive; None: from the first row), as
#: (position, index entry, a function reading the creative): what the owner's store reads
#: (streams.library.store).
#: Rows a derived order passes over come as (position, None, None) (streams.library.index.walk).
Scan = Callable[[str, str, bool, "str | None", "list[str] | None"],
                Iterator[tuple[str, Any, "Callable[[], StoredCreative | None] | None"]]]


@dataclass
class AccountPage:
    account_id: str
    items: list[tuple[str, dict[str, Any]]] = dataclass_field(default_factory=list)  # (position, AdCP creative)
    stopped_at: str | None = None  # the walk ran out of budget here (None: it reached the end or had enough)
    counts: dict[str, int] = dataclass_field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "items": self.items, "stopped_at": self.stopped_at, "counts": self.counts}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> AccountPage:
        return cls(account_id=body["account_id"], items=[(p, item) for p, item in body["items"]],
                   stopped_at=body.get("stopped_at"), counts=dict(body.get("counts") or {}))


def _is_after(query: PageQuery, at: tuple[str, str]) -> bool:
    if query.after is None:
        return True
    return at < query.after if query.descending else at > query.after


def view_of(stored: StoredCreative) -> CreativeChanged:
    return event_for(stored, ChangeKind.UNKNOWN, [], stored.last_command_id)


def account_page(query: PageQuery, account_id: str, scan: Scan, counts: Mapping[str, int], *,
                 budget: int = SCAN_BUDGET) -> AccountPage:
    """Up to `size + 1` creatives of one account that match, after the cursor, in order: a walk of
    the account's index range that stops when it has them or when `budget` rows were examined."""
    page = AccountPage(account_id, counts=dict(counts))
    start = query.after[0] if query.after else None
    examined = 0
    for position, entry, read in scan(account_id, query.field, query.descending, start, query.filters.get("statuses")):
        if not _is_after(query, (position, account_id)):
            continue
        examined += 1
        # most filters end here, unread (and the rows a derived order passes over come without an entry)
        stored = read() if entry is not None and index.may_match(entry, query.filters) else None
        creative = view_of(stored) if stored is not None else None
        if creative is not None and matches(creative, query.filters):
            page.items.append((position, as_adcp(creative, include_assignments=query.include_assignments,
                                                 include_variables=query.include_variables)))
            if len(page.items) > query.size:
                break
        if examined >= budget:
            page.stopped_at = position
            break
    return page


# -- the answer, from the pages of every account asked for -----------------------------------------
def merge(query: PageQuery, pages: Iterable[AccountPage], accounts: Mapping[str, dict[str, Any]] | None = None,
          fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The list_creatives response from each account's page (`accounts`: the account shown on the
    items of each account, when several are read)."""
    pages = list(pages)
    candidates = sorted(((p, page.account_id, item) for page in pages for p, item in page.items),
                        key=lambda c: (c[0], c[1]), reverse=query.descending)
    stops = [page.stopped_at for page in pages if page.stopped_at is not None]
    if stops:  # an account walked only up to here: nothing beyond it can be shown yet
        cut = max(stops) if query.descending else min(stops)
        candidates = [c for c in candidates if (c[0] >= cut if query.descending else c[0] <= cut)]
    shown = candidates[:query.size]
    if len(candidates) > query.size:
        has_more, after = True, (shown[-1][0], shown[-1][1])
    elif stops:
        has_more, after = True, (cut, "" if query.descending else _LAST_ACCOUNT)
    else:
        has_more, after = False, None
    items = []
    for _, account_id, item in shown:
        if accounts:
            item = {**item, "account": accounts.get(account_id)}
        items.append(item)
    if fields:
        keep = set(fields) | set(ALWAYS_PROJECTED)
        items = [{k: v for k, v in item.items() if k in keep} for item in items]
    active = {k for k, v in query.filters.items() if v not in (None, [], "")}
    pagination: dict[str, Any] = {"has_more": has_more}
    if after is not None:
        pagination["cursor"] = _cursor(query, after, query.seen + len(items))
    response: dict[str, Any] = {
        "query_summary": {"total_matching": query.seen + len(items), "returned": len(items),
                          "filters_applied": sorted(active),
                          "sort_applied": {"field": query.field, "direction": query.direction}},
        "pagination": pagination,
        "creatives": items,
    }
    if active <= _COUNTED:  # exact totals and summaries from the counts, whatever the library's size
        total, by_status, by_format = 0, {}, {}
        for page in pages:
            count, statuses, formats = index.summaries(page.counts, query.filters.get("statuses"),
                                                       query.filters.get("format_kinds"))
            total += count
            for target, part in ((by_status, statuses), (by_format, formats)):
                for key, value in part.items():
                    target[key] = target.get(key, 0) + value
        response["query_summary"]["total_matching"] = total
        pagination["total_count"] = total
        response["status_summary"], response["format_summary"] = by_status, by_format
    return response


# -- everything in memory (tests and tools: the same walk over a sorted list) -----------------------
def memory_scan(stored: Iterable[StoredCreative]) -> Scan:
    """A Scan over creatives held in memory, ordered exactly as the owner's store orders them."""
    stored = list(stored)
    placed = [(row, index.Placement.of(row)) for row in stored]
    by_key = sorted(((key, row, p.entry) for row, p in placed for key in p.keys.values()), key=lambda r: r[0])

    def scan(account_id: str, field: str, descending: bool, start: str | None,
             statuses: list[str] | None = None) -> Iterator[tuple[str, Any, Any]]:
        def stored_walk(order: str, backwards: bool, at: str | None) -> Iterator[tuple[str, Any, Any]]:
            rows = [(key[len(index.prefix(account_id, order)):], row, entry) for key, row, entry in by_key
                    if index.in_range(key, account_id, order)]
            if backwards:
                rows.reverse()
            for position, row, entry in rows:
                if at is None or (position <= at if backwards else position >= at):
                    yield position, entry, (lambda row=row: row)
        counts = index.count_changes({}, ((None, p) for row, p in placed if row.account_id == account_id))
        return index.walk(field, descending, start, stored_walk, counts, statuses)
    return scan


def list_creatives(creatives: Iterable[CreativeChanged], request: Mapping[str, Any],
                   accounts: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The list_creatives response over creatives in memory, computed as the owners compute it."""
    query = parse_query(request)
    stored = [stored_from_change(c) for c in creatives]
    scan = memory_scan(stored)
    account_ids = sorted({s.account_id for s in stored} | set(accounts or ()))
    pages = [account_page(query, a, scan, index.moved({}, ((None, s) for s in stored if s.account_id == a))[1])
             for a in account_ids]
    return merge(query, pages, accounts, request.get("fields"))
