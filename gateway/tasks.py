"""Tasks this gateway accepted: who owns them, and the webhook to call when a submitted one completes.

The answers themselves come from the task-results topic (gateway.read_model); this holds only what
the request said (account, push_notification_config), bounded in size.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.read_model import Bounded, LibraryView
from gateway.webhooks import TaskWebhooks
from topics.events import TaskStatus


@dataclass(frozen=True)
class PendingTask:
    task_id: str
    account_id: str
    task_type: str
    created_at: datetime
    push_notification_config: dict[str, Any] | None


class Tasks:
    def __init__(self, view: LibraryView, webhooks: TaskWebhooks, *, limit: int = 100_000,
                 give_up_after_s: float = 24 * 3600) -> None:
        self._view, self._webhooks, self._give_up_after_s = view, webhooks, give_up_after_s
        self._pending: Bounded = Bounded(limit)

    @property
    def retry_horizon_s(self) -> float:
        return self._webhooks.retry_horizon_s

    @property
    def webhook_signing_keys(self) -> list[dict[str, Any]]:
        return self._webhooks.signer.public_jwks

    def submitted(self, task_id: str, account_id: str, task_type: str, created_at: datetime,
                  push_notification_config: dict[str, Any] | None) -> None:
        self._pending[task_id] = PendingTask(task_id, account_id, task_type, created_at, push_notification_config)

    def forget(self, task_id: str) -> None:
        """The task was never sent (refused before publishing): it does not exist."""
        self._pending.pop(task_id, None)

    def get(self, task_id: str) -> PendingTask | None:
        return self._pending.get(task_id)

    def watch(self, task_id: str) -> None:
        """When the submitted task completes, send its webhook (if one was asked for). A task answered
        within its request gets none: AdCP webhooks are for work that outlived the call."""
        pending = self._pending.get(task_id)
        if pending is not None and pending.push_notification_config:
            self._webhooks.schedule(self._notify(pending))

    async def _notify(self, pending: PendingTask) -> None:
        answer = self._view.expect(pending.task_id)
        result = await self._view.settle(pending.task_id, answer, self._give_up_after_s)
        if result is None:
            return
        status = "failed" if result.status is TaskStatus.FAILED else "completed"
        await self._webhooks.deliver(pending.push_notification_config, task_id=pending.task_id,
                                     task_type=pending.task_type, status=status, result=json.loads(result.result_json))
