"""Notifications and campaign health, as the API shows them: query notifications (filters, cursor
pagination) and act on them (mark read, acknowledge, mark all read), all account-scoped.

Reads (through topics.views.CompactedView): notifications (every notification, one per id),
notification_state (read / acknowledged flags), campaign_health. Writes: notification_state.
`select` is pure: the operations only gather its inputs.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway import keys
from gateway.errors import invalid
from gateway.operations import Call, Operation
from gateway.scope import account_of
from streams.notify.logic import TYPES
from topics.catalogue import topic
from topics.events import CampaignHealth, Notification, NotificationState
from topics.ids import public, public_all, scoped
from topics.views import CompactedView, GroupedLazyView

MAX_PAGE = 100
URGENCIES = ("low", "medium", "high")


class NotificationsView:
    """Every notification (deduplicated by id) with its read and acknowledged flags, and every
    campaign's latest health."""

    def __init__(self, bootstrap_servers: str, codecs: Any, topic_prefix: str) -> None:
        self.notes = GroupedLazyView(bootstrap_servers, topic("notifications").full_name(topic_prefix),
                                     codecs.value("notifications"), codecs.key("notifications"), lambda n: n.notification_id)
        self.states = CompactedView(bootstrap_servers, topic("notification_state").full_name(topic_prefix),
                                    codecs.value("notification_state"), lambda s: s.notification_id)
        self.health = CompactedView(bootstrap_servers, topic("campaign_health").full_name(topic_prefix),
                                    codecs.value("campaign_health"), lambda h: h.campaign_id)

    async def start(self) -> None:
        for view in (self.notes, self.states, self.health):
            await view.start()

    async def stop(self) -> None:
        for view in (self.notes, self.states, self.health):
            await view.stop()

    def of_account(self, account_id: str) -> list[Notification]:
        return self.notes.group(account_id)  # the topic is keyed by account

    def state(self, notification_id: str) -> NotificationState | None:
        return self.states.get(notification_id)


# -- selection (pure) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    types: frozenset[str] = frozenset()
    urgency: frozenset[str] = frozenset()
    acknowledged: bool | None = None
    unread_only: bool = False
    campaign_id: str | None = None
    campaign_creatives: frozenset[str] = frozenset()  # a creative notification belongs to its creative's campaigns
    creative_id: str | None = None
    since: datetime | None = None


def _cursor_of(note: Notification) -> str:
    return base64.urlsafe_b64encode(json.dumps([note.created_at.isoformat(), note.notification_id]).encode()).decode()


def _after_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, note_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        after = datetime.fromisoformat(created)
        if after.tzinfo is None:
            raise ValueError("naive")
        return after, str(note_id)
    except (ValueError, TypeError):
        raise invalid("pagination.cursor is not a cursor this API gave.", "pagination.cursor") from None


def matches(note: Notification, state: NotificationState | None, f: Filters) -> bool:
    read, acknowledged = (state.read, state.acknowledged) if state else (False, False)
    return ((not f.types or note.type in f.types) and (not f.urgency or note.urgency.value.lower() in f.urgency)
            and (f.acknowledged is None or acknowledged == f.acknowledged) and (not f.unread_only or not read)
            and (f.campaign_id is None or note.campaign_id == f.campaign_id
                 or (note.campaign_id is None and note.creative_id in f.campaign_creatives))
            and (f.creative_id is None or note.creative_id == f.creative_id)
            and (f.since is None or note.created_at >= f.since))


def select(notes: Iterable[Notification], state_of: Callable[[str], NotificationState | None], f: Filters, *,
           max_results: int = 50, cursor: str | None = None) -> tuple[list[Notification], str | None]:
    """The matching notifications, newest first, one page after `cursor`; and the next cursor."""
    ordered = sorted((n for n in notes if matches(n, state_of(n.notification_id), f)),
                     key=lambda n: (n.created_at, n.notification_id), reverse=True)
    if cursor:
        after = _after_cursor(cursor)
        ordered = [n for n in ordered if (n.created_at, n.notification_id) < after]
    page = ordered[:max_results]
    return page, (_cursor_of(page[-1]) if len(ordered) > max_results else None)


def counts(notes: Iterable[Notification], state_of: Callable[[str], NotificationState | None]) -> dict[str, int]:
    """Unread, and unread high-urgency (what list_campaigns shows)."""
    unread = [n for n in notes if not ((s := state_of(n.notification_id)) and s.read)]
    return {"unread": len(unread), "high_priority": sum(1 for n in unread if n.urgency.value == "HIGH")}


def note_view(note: Notification, state: NotificationState | None) -> dict[str, Any]:
    return {"notification_id": note.notification_id, "type": note.type, "urgency": note.urgency.value.lower(),
            "message": note.message, "action_required": note.action_required,
            "references": {"brand_agent_id": public(note.brand_agent_id), "campaign_id": public(note.campaign_id),
                           "creative_id": note.creative_id, "sales_agent_id": public(note.sales_agent_id),
                           "rejection_reason": note.rejection_reason},
            "read": bool(state and state.read), "acknowledged": bool(state and state.acknowledged),
            "created_at": note.created_at.isoformat()}


def health_view(health: CampaignHealth | None) -> dict[str, Any] | None:
    """A campaign's `syncHealth`, in the product brief's shape (None until first computed)."""
    if health is None:
        return None
    return {"status": health.status.value.lower(), "syncedTactics": health.synced_tactics,
            "totalTactics": health.total_tactics, "approvedCreatives": health.approved_creatives,
            "totalCreatives": health.total_creatives, "failuresInWindow": health.failures_in_window,
            "lastSyncIssue": health.last_sync_issue, "reasons": list(health.reasons),
            "missingTactics": public_all(health.missing_tactics), "computedAt": health.computed_at.isoformat()}


def campaign_counts(view: NotificationsView, account_id: str, campaign_id: str, creatives: Iterable[str],
                    agents: Iterable[str]) -> dict[str, int]:
    """A campaign's `notifications` in the brief's shape: its own, its creatives' and its tactics'
    sales agents' unread ones."""
    f = Filters(campaign_id=campaign_id, campaign_creatives=frozenset(creatives))
    agents = set(agents)
    mine = [n for n in view.of_account(account_id) if matches(n, None, f)
            or (n.campaign_id is None and n.creative_id is None and n.sales_agent_id in agents)]
    found = counts(mine, view.state)
    return {"unread": found["unread"], "highPriority": found["high_priority"]}


# -- operations -----------------------------------------------------------------------------------
def _strings(params: Mapping[str, Any], name: str, allowed: Iterable[str] | None = None) -> frozenset[str]:
    value = params.get(name)
    if value is None:
        return frozenset()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise invalid(f"{name} must be a string or a list of strings.", name)
    allowed = set(allowed) if allowed is not None else None
    if allowed is not None and not set(values) <= allowed:
        raise invalid(f"{name} must be among {', '.join(sorted(allowed))}.", name)
    return frozenset(values)


def _filters(call: Call, account_id: str) -> Filters:
    params = call.params
    since = None
    if params.get("since") is not None:
        try:
            since = datetime.fromisoformat(str(params["since"]).replace("Z", "+00:00"))
        except ValueError:
            raise invalid("since must be an ISO 8601 date-time.", "since") from None
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    for flag in ("acknowledged", "unread_only"):
        if params.get(flag) is not None and not isinstance(params[flag], bool):
            raise invalid(f"{flag} must be true or false.", flag)
    campaign_id = scoped(account_id, params["campaign_id"]) if isinstance(params.get("campaign_id"), str) else None
    creatives = frozenset(call.app[keys.CAMPAIGNS].assigned(campaign_id)) if campaign_id else frozenset()
    return Filters(types=_strings(params, "types", TYPES) | _strings(params, "type", TYPES),
                   urgency=_strings(params, "urgency", URGENCIES), acknowledged=params.get("acknowledged"),
                   unread_only=bool(params.get("unread_only")), campaign_id=campaign_id,
                   campaign_creatives=creatives,
                   creative_id=params.get("creative_id") if isinstance(params.get("creative_id"), str) else None, since=since)


async def list_notifications(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    view = call.app[keys.NOTIFICATIONS]
    pagination = call.params.get("pagination") or {}
    if not isinstance(pagination, dict):
        raise invalid("pagination must be {max_results, cursor}.", "pagination")
    max_results = pagination.get("max_results", 50)
    if not isinstance(max_results, int) or not 1 <= max_results <= MAX_PAGE:
        raise invalid(f"pagination.max_results: 1 to {MAX_PAGE}.", "pagination.max_results")
    mine = view.of_account(account_id)
    page, cursor = select(mine, view.state, _filters(call, account_id), max_results=max_results,
                          cursor=pagination.get("cursor") if isinstance(pagination.get("cursor"), str) else None)
    return {"notifications": [note_view(n, view.state(n.notification_id)) for n in page],
            "pagination": {"has_more": cursor is not None, **({"cursor": cursor} if cursor else {})},
            **counts(mine, view.state)}


async def _mark(call: Call, account_id: str, ids: Iterable[str], *, read: bool, acknowledged: bool) -> list[str]:
    view, app = call.app[keys.NOTIFICATIONS], call.app
    settings, codecs, broker = app[keys.SETTINGS], app[keys.CODECS], app[keys.BROKER]
    done = []
    for note_id in dict.fromkeys(ids):
        if view.notes.find(account_id, note_id) is None:
            continue  # unknown, or another account's: nothing to do, nothing to tell
        before = view.state(note_id)
        state = NotificationState(notification_id=note_id, account_id=account_id,
                                  read=read or bool(before and before.read),
                                  acknowledged=acknowledged or bool(before and before.acknowledged), updated_at=datetime.now(UTC))
        if before is None or (before.read, before.acknowledged) != (state.read, state.acknowledged):
            await broker.publish(topic("notification_state").full_name(settings.topic_prefix),
                                 key=codecs.key("notification_state").encode(note_id),
                                 value=codecs.value("notification_state").encode(state))
            view.states.apply(state)
        done.append(note_id)
    return done


def _ids(params: Mapping[str, Any]) -> list[str]:
    ids = params.get("notification_ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_PAGE or not all(isinstance(i, str) for i in ids):
        raise invalid(f"notification_ids: 1 to {MAX_PAGE} ids.", "notification_ids")
    return ids


async def mark_notifications_read(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    return {"marked_read": await _mark(call, account_id, _ids(call.params), read=True, acknowledged=False)}


async def acknowledge_notifications(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    return {"acknowledged": await _mark(call, account_id, _ids(call.params), read=True, acknowledged=True)}


async def mark_all_notifications_read(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    view, filters = call.app[keys.NOTIFICATIONS], _filters(call, account_id)
    unread = [n.notification_id for n in view.of_account(account_id)
              if not ((state := view.state(n.notification_id)) and state.read) and matches(n, state, filters)]
    return {"marked_read": len(await _mark(call, account_id, unread, read=True, acknowledged=False))}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    account = {"type": "object", "properties": {"account_id": {"type": "string"}}, "required": ["account_id"]}
    return {"type": "object", "properties": {"account": account, **properties}, "required": ["account", *required]}


_LIST = {"types": {"type": "array", "items": {"type": "string", "enum": list(TYPES)}},
         "urgency": {"type": "array", "items": {"type": "string", "enum": list(URGENCIES)}},
         "acknowledged": {"type": "boolean"}, "unread_only": {"type": "boolean"}, "campaign_id": {"type": "string"},
         "creative_id": {"type": "string"}, "since": {"type": "string", "format": "date-time"},
         "pagination": {"type": "object", "properties": {"max_results": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                                                         "cursor": {"type": "string"}}}}
_IDS = {"notification_ids": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_PAGE}}
TAGS = ("notifications",)

OPERATIONS = (
    Operation("list_notifications", "The account's notifications, newest first: filter by types, urgency, acknowledged, "
              "unread_only, campaign_id, creative_id, since; cursor pagination. Also answers the unread and "
              "high-priority counts.", _schema(_LIST, []), list_notifications, tags=TAGS),
    Operation("mark_notifications_read", "Mark notifications read.", _schema(_IDS, ["notification_ids"]),
              mark_notifications_read, tags=TAGS),
    Operation("acknowledge_notifications", "Acknowledge notifications (they are read, and handled).",
              _schema(_IDS, ["notification_ids"]), acknowledge_notifications, tags=TAGS),
    Operation("mark_all_notifications_read", "Mark every notification read (optionally those matching the list filters).",
              _schema({k: v for k, v in _LIST.items() if k != "pagination"}, []), mark_all_notifications_read, tags=TAGS),
)
