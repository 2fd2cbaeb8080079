"""The status processor: where each creative stands with each sales agent, and the re-syncs a
content change needs.

Reads (all keyed account_id/creative_id, co-partitioned): creative state, sync results, approval
events. Writes: the sync_state table, sync_status (one row per creative and agent, on change),
sync_jobs (re-syncs of changed content to the agents that have the creative).
"""
from __future__ import annotations

from datetime import UTC, datetime

from streams.runtime import consume
from streams.status import logic
from streams.status.logic import StatusChange


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    app, codecs, metrics = pipeline.app, pipeline.codecs, pipeline.metrics
    states = pipeline.tables["sync_state"]
    status_topic, jobs_topic = pipeline.topics["sync_status"], pipeline.topics["sync_jobs"]

    def state_of(account_id: str, creative_id: str):  # noqa: ANN202
        return states.get(logic.state_key(account_id, creative_id)) or logic.empty_state(account_id, creative_id)

    async def publish(change: StatusChange, cause: str, before) -> None:  # noqa: ANN001
        if change.state == before and not change.rows and not change.jobs:
            return  # late, redelivered or irrelevant: no write at all (most library changes)
        states[logic.state_key(change.state.account_id, change.state.creative_id)] = change.state
        for row in change.rows:
            await status_topic.send(key=codecs.key("sync_status").encode(f"{row.account_id}/{row.creative_id}/{row.sales_agent_id}"),
                                    value=codecs.value("sync_status").encode(row))
        for job in change.jobs:
            await jobs_topic.send(key=codecs.key("sync_jobs").encode(job.sales_agent_id), value=codecs.value("sync_jobs").encode(job))
        metrics.status_changes.labels(cause).inc(len(change.rows))

    async def on_change(change, event) -> None:  # noqa: ANN001
        before = state_of(change.account_id, change.creative_id)
        await publish(logic.apply_change(before, change, datetime.now(UTC)), "content", before)

    async def on_result(result, event) -> None:  # noqa: ANN001
        before = state_of(result.account_id, result.creative_id)
        await publish(logic.apply_result(before, result), "sync", before)

    async def on_approval(approval, event) -> None:  # noqa: ANN001
        before = state_of(approval.account_id, approval.creative_id)
        await publish(logic.apply_approval(before, approval), "approval", before)

    for role, name, handle in (("creative_state", "status-changes", on_change), ("sync_results", "status-results", on_result),
                               ("approval_events", "status-approvals", on_approval)):
        def make(role: str = role, name: str = name, handle=handle):  # noqa: ANN001, ANN202 - one agent per topic
            async def agent(stream):  # noqa: ANN001
                await consume(stream, processor=name, codec=codecs.value(role), handle=handle,
                              dead_letters=pipeline.dead_letters, metrics=metrics)
            agent.__name__ = agent.__qualname__ = name.replace("-", "_")
            return app.agent(pipeline.topics[role], name=name)(agent)
        make()
