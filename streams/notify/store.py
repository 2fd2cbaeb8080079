"""The notifications as their owner reads them: the notifications table, whose store
(streams.stores) also keeps each account's notifications newest first and its unread counts
(streams.notify.inbox derives them).

Writes: the notifications processor (streams.notify.agent). Reads: its commands and retention,
and the owner's queries (streams.notify.reads).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from streams import stores
from streams.notify import inbox
from streams.runtime import stored_row
from topics.events import StoredNotification

stores.derive("notifications", inbox.NotificationIndex())


class NotificationStore:
    def __init__(self, table: Any, partition_of: Callable[[str], int]) -> None:
        self._table, self._partition_of = table, partition_of

    def get(self, account_id: str, notification_id: str, event: Any = None) -> StoredNotification | None:
        return stored_row(self._table, inbox.row_key(account_id, notification_id), event)

    def counts(self, account_id: str) -> dict[str, int]:
        return self._table.data.account_counts(self._partition_of(account_id), account_id)

    def newest_first(self, account_id: str, after: str | None = None) -> Iterator[tuple[str, inbox.Entry]]:
        """The account's index, newest first, from position `after` (inclusive) if given."""
        low, high = inbox.bounds(account_id, after)
        return self._table.data.index_range(self._partition_of(account_id), low, high, True)
