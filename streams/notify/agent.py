"""Publishing notifications (the rules are in streams.notify.logic; the status and health
processors decide when). Writes: notifications, keyed by account_id."""
from __future__ import annotations

from topics.events import Notification


async def publish(pipeline, note: Notification) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    codecs = pipeline.codecs
    await pipeline.publish("notifications", codecs.key("notifications").encode(note.account_id),
                           codecs.value("notifications").encode(note))
    pipeline.metrics.notifications.labels(note.type).inc()
