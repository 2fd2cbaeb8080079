"""The notifications' reads, answered by the worker that owns the account (streams/owners.py does
the routing checks; gateway/notifications.py asks):

  POST /owners/notifications/page             a page of list_notifications, with the unread counts
  POST /owners/notifications/campaign-counts  each campaign's unread and high-priority notifications

Reads: the notifications table and its index (streams.notify.store). Writes: nothing.
"""
from __future__ import annotations

from typing import Any

from streams.notify import inbox
from streams.owners import owner_query


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    store = pipeline.notifications

    def page(body: dict[str, Any]) -> dict[str, Any]:
        account_id, cursor = str(body["account_id"]), body.get("cursor")
        try:
            after = inbox.position_of(cursor) if cursor else None
        except inbox.BadCursor:
            return {"bad_cursor": True}
        found = inbox.page(store.newest_first(account_id, after), inbox.Filters.from_json(body["filters"]),
                           int(body["max_results"]), cursor)
        rows = [store.get(account_id, entry.notification_id) for _, entry in found.entries]
        counts = store.counts(account_id)
        return {"notifications": [r.model_dump(mode="json") for r in rows if r is not None], "cursor": found.cursor,
                "unread": counts.get("unread", 0), "high_priority": counts.get("high_priority", 0)}

    def campaign_counts(body: dict[str, Any]) -> dict[str, Any]:
        scopes = [inbox.CampaignScope(str(c["campaign_id"]), frozenset(c["creatives"]), frozenset(c["agents"]))
                  for c in body["campaigns"]]
        return {"counts": inbox.campaign_counts(store.newest_first(str(body["account_id"])), scopes)}

    account = lambda body: [str(body["account_id"])]  # noqa: E731
    owner_query(pipeline, "/owners/notifications/page", "notifications", account, page)
    owner_query(pipeline, "/owners/notifications/campaign-counts", "notifications", account, campaign_counts)
