"""The library processor: applies sync_creatives commands to an account's creative library.

Reads: library commands (keyed by account: one owner per account, so a request's batch is applied
atomically). Writes: the creatives (with the index and counts its store derives) and idempotency
tables (changelogs; an idempotency key is forgotten after its replay window), creative state (one
event per change), content changes (those of the changes that re-sync), task results (the AdCP
answer), dead letters (invalid commands).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams import retention
from streams.library import logic
from streams.library.store import IdempotencyIndex, LibraryStore
from streams.library.logic import Verdict
from streams.library.requests import Problem, RequestRejected, creative_problems, parse_sync_request, payload_hash
from streams.runtime import consume, stored_row
from topics.codec import from_json, to_json
from topics.events import FailureStage, IdempotencyRecord, LibraryCommand, LibraryOperation, TaskResult, TaskStatus

PROCESSOR = "library"


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    app, codecs, metrics = pipeline.app, pipeline.codecs, pipeline.metrics
    creatives, idempotency = pipeline.tables["creatives"], pipeline.tables["idempotency"]
    store = pipeline.library = LibraryStore(creatives, codecs.partition_of("library_commands"))
    replay_window = timedelta(seconds=pipeline.settings.idempotency_ttl_s)

    def library_of(account_id: str) -> list[str]:
        # Only delete_missing needs an account's whole library: the walk of its index range.
        return [entry.creative_id for _, entry, _ in store.scan(account_id, "created_date", False, None)]

    state_key, state_value = codecs.key("creative_state"), codecs.value("creative_state")
    content_value = codecs.value("content_changes")
    result_key, result_value = codecs.key("task_results"), codecs.value("task_results")

    async def answer(command: LibraryCommand, body: dict, failed: bool = False) -> None:
        result = TaskResult(task_id=command.command_id, account_id=command.account_id, task_type="sync_creatives",
                            status=TaskStatus.FAILED if failed else TaskStatus.COMPLETED, result_json=to_json(body),
                            completed_at=datetime.now(UTC))
        await pipeline.publish("task_results", result_key.encode(command.command_id), result_value.encode(result))

    async def handle(command: LibraryCommand, event) -> None:  # noqa: ANN001
        if command.operation is not LibraryOperation.SYNC_CREATIVES:
            raise ValueError(f"unsupported library operation {command.operation}")
        payload = from_json(command.request_json)
        try:
            request = parse_sync_request(payload, schema_checked=command.schema_checked)
            if request.account_id != command.account_id:
                raise RequestRejected([Problem("INVALID_REQUEST", "account.account_id differs from the command's account.",
                                                     "account.account_id")])
        except RequestRejected as rejected:  # a producer bypassed the gateway's checks: say why, twice
            await answer(command, {"errors": [p.as_adcp() for p in rejected.problems]}, failed=True)
            await pipeline.dead_letters.record(event.message, FailureStage.PROCESS, PROCESSOR, rejected)
            return
        offset, now = event.message.offset, command.received_at
        idempotency_key = logic.creative_key(command.account_id, request.idempotency_key)
        request_hash = payload_hash(payload)
        earlier = stored_row(idempotency, idempotency_key)
        verdict = logic.idempotency_verdict(earlier, request_hash=request_hash, source_offset=offset, now=now,
                                            ttl=replay_window)
        if verdict is Verdict.REPLAY:
            await answer(command, logic.replayed(from_json(earlier.response_json)))
            return
        if verdict is Verdict.CONFLICT:
            await answer(command, logic.conflict_response(request.idempotency_key), failed=True)
            return

        library_ids = library_of(command.account_id) if request.delete_missing else []
        existing = {cid: store.get(command.account_id, cid) for cid in logic.named_ids(request, library_ids)}
        decision = logic.apply_sync(request, command_id=command.command_id, existing=existing, library_ids=library_ids,
                                    now=now, source_offset=offset, validate=creative_problems)
        partition = event.message.partition  # the tables follow the commands' partitions
        # (the store derives the account's ordered keys and counts from these rows, in the same write)
        await pipeline.write_rows("creatives", ((logic.creative_key(stored.account_id, stored.creative_id), stored)
                                                for stored in decision.writes), partition=partition)
        for change in decision.events:
            key = state_key.encode(logic.creative_key(change.account_id, change.creative_id))
            await pipeline.publish("creative_state", key, state_value.encode(change))
            if logic.concerns_status(change):
                await pipeline.publish("content_changes", key, content_value.encode(change))
        for outcome in decision.outcomes:
            metrics.creatives.labels(outcome.action).inc()
        body = logic.sync_response_for(decision)
        record = IdempotencyRecord(
            account_id=command.account_id, idempotency_key=request.idempotency_key, payload_hash=request_hash,
            task_id=command.command_id, response_json=to_json(body), source_offset=offset, recorded_at=now)
        await pipeline.write_rows("idempotency", [(idempotency_key, record)], partition=partition)
        await answer(command, body, failed=bool(decision.errors))

    @app.agent(pipeline.topics["library_commands"], name=PROCESSOR)
    async def library(stream):  # noqa: ANN001
        await consume(stream, processor=PROCESSOR, codec=codecs.value("library_commands"), handle=handle,
                      dead_letters=pipeline.dead_letters, metrics=metrics)

    @app.timer(pipeline.settings.retention_sweep_s)
    async def forget_expired_keys() -> None:
        """An idempotency key past its replay window answers nothing any more: its record goes."""
        await retention.forget_older(pipeline, "idempotency", "library_commands", datetime.now(UTC) - replay_window,
                                     prefix_of=IdempotencyIndex.prefix, row_key_of=logic.creative_key)
