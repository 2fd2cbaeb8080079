"""Notifications and campaign health, as the API shows them: query notifications (filters, cursor
pagination) and act on them (mark read, acknowledge, mark all read), all account-scoped.

An account's notifications live with the worker that owns the account (streams/notify): a page
is asked of it (streams/notify/reads.py), and marks are commands it applies (the
notification_commands topic), answered on the task results topic, so that the writer reads its
own marks at once. (Campaign health comes with the campaigns, gateway/campaigns.py.)
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway import keys
from gateway.errors import AdcpRequestError, invalid
from gateway.operations import Call, Operation
from gateway.scope import account_of
from streams.notify import inbox
from streams.notify.logic import TYPES
from topics.catalogue import topic
from topics.codec import from_json, to_json
from topics.events import CampaignHealth, NotificationCommand, NotificationOperation, StoredNotification
from topics.ids import public, public_all, scoped

MAX_PAGE = 100
URGENCIES = ("low", "medium", "high")


def note_view(note: StoredNotification) -> dict[str, Any]:
    return {"notification_id": note.notification_id, "type": note.type, "urgency": note.urgency.value.lower(),
            "message": note.message, "action_required": note.action_required,
            "references": {"brand_agent_id": public(note.brand_agent_id), "campaign_id": public(note.campaign_id),
                           "creative_id": note.creative_id, "sales_agent_id": public(note.sales_agent_id),
                           "rejection_reason": note.rejection_reason},
            "read": note.read, "acknowledged": note.acknowledged, "created_at": note.created_at.isoformat()}


def health_view(health: CampaignHealth | None) -> dict[str, Any] | None:
    """A campaign's `syncHealth`, in the product brief's shape (None until first computed)."""
    if health is None:
        return None
    return {"status": health.status.value.lower(), "syncedTactics": health.synced_tactics,
            "totalTactics": health.total_tactics, "approvedCreatives": health.approved_creatives,
            "totalCreatives": health.total_creatives, "failuresInWindow": health.failures_in_window,
            "lastSyncIssue": health.last_sync_issue, "reasons": list(health.reasons),
            "missingTactics": public_all(health.missing_tactics), "computedAt": health.computed_at.isoformat()}


async def campaign_counts(app: web.Application, account_id: str, scopes: list[inbox.CampaignScope]) -> dict[str, dict[str, int]]:
    """Each campaign's `notifications` in the brief's shape (its own, its creatives' and its tactics'
    sales agents' unread ones), counted by the owner of the account's notifications."""
    if not scopes:
        return {}
    body = {"account_id": account_id, "campaigns": [{"campaign_id": s.campaign_id, "creatives": sorted(s.creatives),
                                                     "agents": sorted(s.agents)} for s in scopes]}
    [answer] = await app[keys.OWNERS].ask("/owners/notifications/campaign-counts", "notifications", [account_id],
                                          lambda _: body)
    return answer["counts"]


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


async def _filters(call: Call, account_id: str) -> inbox.Filters:
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
    detail = await call.app[keys.CAMPAIGNS].campaign(account_id, campaign_id) if campaign_id else None
    creatives = frozenset(detail.assigned) if detail is not None else frozenset()
    return inbox.Filters(types=_strings(params, "types", TYPES) | _strings(params, "type", TYPES),
                         urgency=_strings(params, "urgency", URGENCIES), acknowledged=params.get("acknowledged"),
                         unread_only=bool(params.get("unread_only")), campaign_id=campaign_id,
                         campaign_creatives=creatives,
                         creative_id=params.get("creative_id") if isinstance(params.get("creative_id"), str) else None,
                         since=since)


async def list_notifications(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    pagination = call.params.get("pagination") or {}
    if not isinstance(pagination, dict):
        raise invalid("pagination must be {max_results, cursor}.", "pagination")
    max_results = pagination.get("max_results", 50)
    if not isinstance(max_results, int) or not 1 <= max_results <= MAX_PAGE:
        raise invalid(f"pagination.max_results: 1 to {MAX_PAGE}.", "pagination.max_results")
    cursor = pagination.get("cursor") if isinstance(pagination.get("cursor"), str) else None
    query = {"account_id": account_id, "filters": (await _filters(call, account_id)).as_json(), "max_results": max_results,
             "cursor": cursor}
    [answer] = await call.app[keys.OWNERS].ask("/owners/notifications/page", "notifications", [account_id],
                                               lambda _: query)
    if answer.get("bad_cursor"):
        raise invalid("pagination.cursor is not a cursor this API gave.", "pagination.cursor")
    return {"notifications": [note_view(StoredNotification.model_validate(n)) for n in answer["notifications"]],
            "pagination": {"has_more": answer["cursor"] is not None, **({"cursor": answer["cursor"]} if answer["cursor"] else {})},
            "unread": answer["unread"], "high_priority": answer["high_priority"]}


async def _command(call: Call, command: NotificationCommand) -> dict[str, Any]:
    """Publish a command for the owner of the account's notifications and answer what it did."""
    app = call.app
    settings, codecs, results = app[keys.SETTINGS], app[keys.CODECS], app[keys.LIBRARY_VIEW]
    answer = results.expect(command.command_id, fresh=True)  # before publishing: the answer may come back at once
    await app[keys.BROKER].publish(topic("notification_commands").full_name(settings.topic_prefix),
                                   key=codecs.key("notification_commands").encode(command.account_id),
                                   value=codecs.value("notification_commands").encode(command))
    app[keys.METRICS].published.labels("notification_commands").inc()
    result = await results.settle(command.command_id, answer, settings.read_deadline_s)
    if result is None:  # applied later all the same: marking again is harmless
        raise AdcpRequestError(503, "SERVICE_UNAVAILABLE", "The notifications' owner did not answer in time; the change "
                               "will still be made.", recovery="transient", retry_after=2,
                               suggestion="Retry in a few seconds (marking twice is harmless).")
    return from_json(result.result_json)


def _new_command(account_id: str, operation: NotificationOperation, **fields: Any) -> NotificationCommand:
    return NotificationCommand(command_id=f"notify_{uuid.uuid4().hex}", account_id=account_id, operation=operation,
                               requested_at=datetime.now(UTC), **fields)


def _ids(params: Mapping[str, Any]) -> list[str]:
    ids = params.get("notification_ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_PAGE or not all(isinstance(i, str) for i in ids):
        raise invalid(f"notification_ids: 1 to {MAX_PAGE} ids.", "notification_ids")
    return ids


async def mark_notifications_read(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    return await _command(call, _new_command(account_id, NotificationOperation.MARK_READ, notification_ids=_ids(call.params)))


async def acknowledge_notifications(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    return await _command(call, _new_command(account_id, NotificationOperation.ACKNOWLEDGE,
                                             notification_ids=_ids(call.params)))


async def mark_all_notifications_read(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    filters = (await _filters(call, account_id)).as_json()
    return await _command(call, _new_command(account_id, NotificationOperation.MARK_ALL_READ,
                                             filters_json=to_json(filters)))


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
