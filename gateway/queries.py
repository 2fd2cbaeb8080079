"""list_creatives over one account's creatives, as pure functions: filters, sort, cursor pages,
field projection and summaries (AdCP 3.2 list-creatives request/response).
"""
from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from topics.events import CreativeChanged

MAX_PAGE, DEFAULT_PAGE = 100, 50
#: What `fields` never drops: the properties list-creatives-response requires of every creative
#: (the official client refuses a whole answer that misses one of them), and its format reference
#: (format_id or format_kind: exactly one is required).
ALWAYS_PROJECTED = ("creative_id", "name", "status", "created_date", "updated_date", "format_id", "format_kind")
_SORT_KEYS = {
    "created_date": lambda c: (c.created_at, c.creative_id),
    "updated_date": lambda c: (c.updated_at, c.creative_id),
    "name": lambda c: ((c.name or "").lower(), c.creative_id),
    "status": lambda c: (c.status, c.creative_id),
    "assignment_count": lambda c: (len(c.assigned_to), c.creative_id),
}


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


def _cursor(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([offset, fingerprint]).encode()).decode()


def _offset_of(cursor: str | None, fingerprint: str) -> int:
    if not cursor:
        return 0
    try:
        offset, seen = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if seen != fingerprint or not isinstance(offset, int) or offset < 0:
            raise ValueError
        return offset
    except (ValueError, TypeError):
        raise QueryError("The cursor is not valid for this query; start again without it.", "pagination.cursor") from None


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


def list_creatives(creatives: Iterable[CreativeChanged], request: Mapping[str, Any],
                   accounts: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The AdCP list_creatives response for `request` over one account's `creatives` (or several
    accounts' creatives: `accounts` then maps each account id to the account shown on its items)."""
    filters = request.get("filters") or {}
    _check_filters(filters)
    sort = request.get("sort") or {}
    field, direction = sort.get("field", "created_date"), sort.get("direction", "desc")
    if field not in _SORT_KEYS:
        raise QueryError(f"sort.field must be one of {', '.join(_SORT_KEYS)}.", "sort.field")
    pagination = request.get("pagination") or {}
    size = pagination.get("max_results", DEFAULT_PAGE)
    if not isinstance(size, int) or not 1 <= size <= MAX_PAGE:
        raise QueryError(f"pagination.max_results must be 1 to {MAX_PAGE}.", "pagination.max_results")
    matching = sorted((c for c in creatives if matches(c, filters)), key=_SORT_KEYS[field], reverse=direction == "desc")
    fingerprint = json.dumps([filters, field, direction], sort_keys=True, default=str)[:200]
    start = _offset_of(pagination.get("cursor"), fingerprint)
    page = matching[start:start + size]
    items = [as_adcp(c, include_assignments=bool(request.get("include_assignments")),
                     include_variables=bool(request.get("include_variables")),
                     account=accounts.get(c.account_id) if accounts else None) for c in page]
    if request.get("fields"):
        keep = set(request["fields"]) | set(ALWAYS_PROJECTED)
        items = [{k: v for k, v in item.items() if k in keep} for item in items]
    has_more = start + size < len(matching)
    response: dict[str, Any] = {
        "query_summary": {"total_matching": len(matching), "returned": len(items),
                          "filters_applied": sorted(k for k, v in filters.items() if v not in (None, [], "")),
                          "sort_applied": {"field": field, "direction": direction}},
        "pagination": {"has_more": has_more, **({"cursor": _cursor(start + size, fingerprint)} if has_more else {}),
                       "total_count": len(matching)},
        "creatives": items,
        "status_summary": dict(Counter(c.status for c in matching)),
        "format_summary": dict(Counter(c.format_kind or _format_id(c) or "unknown" for c in matching)),
    }
    return response
