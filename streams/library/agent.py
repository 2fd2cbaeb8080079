"""The library processor: applies creative-library commands to the creatives table.

Reads: library commands (keyed by account, so one request's batch has one owner).
Writes: the creatives table (changelog), creative state (one event per change), task results.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime

from streams.library import logic
from streams.runtime import consume
from topics.codec import to_json
from topics.events import LibraryCommand, LibraryOperation, TaskResult, TaskStatus

PROCESSOR = "library"


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    app, codecs, metrics = pipeline.app, pipeline.codecs, pipeline.metrics
    creatives = pipeline.tables["creatives"]
    state_topic, results_topic = pipeline.topics["creative_state"], pipeline.topics["task_results"]
    state_key, state_value = codecs.key("creative_state"), codecs.value("creative_state")
    result_key, result_value = codecs.key("task_results"), codecs.value("task_results")

    async def handle(command: LibraryCommand, event) -> None:  # noqa: ANN001
        if command.operation is not LibraryOperation.SYNC_CREATIVES:
            raise ValueError(f"unsupported library operation {command.operation}")
        request = json.loads(command.request_json)
        batch = request.get("creatives") or []
        existing = {str(c["creative_id"]): creatives.get(logic.creative_key(command.account_id, str(c["creative_id"])))
                    for c in batch}
        decision = logic.apply_upserts(account_id=command.account_id, command_id=command.command_id,
                                       creatives=batch, existing=existing, now=command.received_at,
                                       source_offset=event.message.offset)
        for stored in decision.writes:
            creatives[logic.creative_key(stored.account_id, stored.creative_id)] = stored
        for change in decision.events:
            await state_topic.send(key=state_key.encode(logic.creative_key(change.account_id, change.creative_id)),
                                   value=state_value.encode(change))
        for outcome in decision.outcomes:
            metrics.creatives.labels(outcome.action).inc()
        result = TaskResult(task_id=command.command_id, account_id=command.account_id, task_type="sync_creatives",
                            status=TaskStatus.COMPLETED, result_json=to_json(logic.sync_response(decision.outcomes)),
                            completed_at=datetime.now(UTC))
        await results_topic.send(key=result_key.encode(command.command_id), value=result_value.encode(result))

    @app.agent(pipeline.topics["library_commands"], name=PROCESSOR)
    async def library(stream):  # noqa: ANN001
        await consume(stream, processor=PROCESSOR, codec=codecs.value("library_commands"), handle=handle,
                      dead_letters=pipeline.dead_letters, metrics=metrics)
