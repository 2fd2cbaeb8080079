"""Notifications: publishing them (the rules are in streams.notify.logic; the status and health
processors decide when), keeping them with the worker that owns their account, and what people do
with them.

Reads: notifications (keyed by account), notification commands (keyed by account, co-partitioned:
mark read, acknowledge, mark all read). Writes: the notifications table (its store derives the
newest-first index and unread counts, streams.notify.store), notification state (the flags, for
dashboards), task results (a command's answer). A timer removes the rows older than the
notifications topic's retention.
"""
from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta

from streams import retention
from streams.notify import inbox
from streams.notify.store import NotificationStore
from streams.runtime import consume, consume_batches
from topics.codec import from_json, to_json
from topics.events import (Notification, NotificationCommand, NotificationOperation, NotificationState, TaskResult,
                           TaskStatus)

log = logging.getLogger(__name__)
INBOX, COMMANDS = "notifications", "notification-commands"
_TASK_TYPES = {NotificationOperation.MARK_READ: "mark_notifications_read",
               NotificationOperation.ACKNOWLEDGE: "acknowledge_notifications",
               NotificationOperation.MARK_ALL_READ: "mark_all_notifications_read"}


async def publish(pipeline, note: Notification) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    codecs = pipeline.codecs
    await pipeline.publish("notifications", codecs.key("notifications").encode(note.account_id),
                           codecs.value("notifications").encode(note))
    pipeline.metrics.notifications.labels(note.type).inc()


def register(pipeline) -> None:  # noqa: ANN001
    app, codecs, metrics, settings = pipeline.app, pipeline.codecs, pipeline.metrics, pipeline.settings
    partition_of = codecs.partition_of("notifications")
    store = pipeline.notifications = NotificationStore(pipeline.tables["notifications"], partition_of)
    state_key, state_value = codecs.key("notification_state"), codecs.value("notification_state")
    result_key, result_value = codecs.key("task_results"), codecs.value("task_results")

    async def take(notes: list) -> None:  # noqa: ANN001 - [(Notification, event)]
        rows: dict[int, dict[str, object]] = {}
        for note, event in notes:
            key, partition = inbox.row_key(note.account_id, note.notification_id), event.message.partition
            written = rows.setdefault(partition, {})
            current = written[key] if key in written else store.get(note.account_id, note.notification_id, event)
            row = inbox.received(current, note)
            if row is not None:
                written[key] = row
        for partition, written in rows.items():
            await pipeline.write_rows("notifications", written.items(), partition=partition)

    async def command(cmd: NotificationCommand, event) -> None:  # noqa: ANN001
        now = datetime.now(UTC)
        if cmd.operation is NotificationOperation.MARK_ALL_READ:
            filters = inbox.Filters.from_json(from_json(cmd.filters_json) if cmd.filters_json else {})
            unread = dataclasses.replace(filters, unread_only=True)
            ids = [entry.notification_id for _, entry in inbox.newest_first(store.newest_first(cmd.account_id), unread)]
        elif cmd.operation in (NotificationOperation.MARK_READ, NotificationOperation.ACKNOWLEDGE):
            ids = list(dict.fromkeys(cmd.notification_ids))
        else:
            raise ValueError(f"unsupported notification operation {cmd.operation}")
        found, changed = [], []
        for note_id in ids:
            row = store.get(cmd.account_id, note_id, event)
            if row is None:
                continue  # unknown, or another account's (keys are per account): nothing to do, nothing to tell
            found.append(note_id)
            after = inbox.flagged(row, cmd.operation, now)
            if after is not None:
                changed.append(after)
        await pipeline.write_rows("notifications", ((inbox.row_key(r.account_id, r.notification_id), r) for r in changed),
                                  partition=event.message.partition)
        for row in changed:
            state = NotificationState(notification_id=row.notification_id, account_id=row.account_id, read=row.read,
                                      acknowledged=row.acknowledged, updated_at=now)
            await pipeline.publish("notification_state", state_key.encode(row.notification_id), state_value.encode(state))
        body = ({"marked_read": len(found)} if cmd.operation is NotificationOperation.MARK_ALL_READ
                else {"acknowledged" if cmd.operation is NotificationOperation.ACKNOWLEDGE else "marked_read": found})
        result = TaskResult(task_id=cmd.command_id, account_id=cmd.account_id, task_type=_TASK_TYPES[cmd.operation],
                            status=TaskStatus.COMPLETED, result_json=to_json(body), completed_at=now)
        await pipeline.publish("task_results", result_key.encode(cmd.command_id), result_value.encode(result))

    @app.agent(pipeline.topics["notifications"], name=INBOX)
    async def notifications(stream):  # noqa: ANN001
        await consume_batches(stream, processor=INBOX, codec=codecs.value("notifications"), handle=take,
                              dead_letters=pipeline.dead_letters, metrics=metrics)

    @app.agent(pipeline.topics["notification_commands"], name=COMMANDS)
    async def commands(stream):  # noqa: ANN001
        await consume(stream, processor=COMMANDS, codec=codecs.value("notification_commands"), handle=command,
                      dead_letters=pipeline.dead_letters, metrics=metrics)

    @app.timer(settings.retention_sweep_s)
    async def forget_old_notifications() -> None:
        """A notification older than the notifications topic keeps its records is forgotten by its owner too."""
        await retention.forget_older(pipeline, "notifications", "notifications",
                                     datetime.now(UTC) - timedelta(days=settings.notification_retention_days),
                                     prefix_of=inbox.prefix, row_key_of=lambda account_id, entry: inbox.row_key(
                                         account_id, entry.notification_id))
