"""kill -9 of a worker in the middle of 5,000 events, then a restart: nothing lost, nothing
double-applied, and the table is restored from its changelog."""
from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime

from creative_sync.samples import display_creative, sync_request
from tests.support import WorkerProcess, group_progress, produce, read_topic, topic_name
from topics.catalogue import TABLES, Codecs
from topics.events import LibraryCommand, LibraryOperation

EVENTS, CREATIVES, ACCOUNTS = 5000, 250, 10
UPDATES_PER_CREATIVE = EVENTS // CREATIVES


def command(i: int, codecs: Codecs, *, version: int | None = None) -> tuple[bytes, bytes]:
    creative = i % CREATIVES
    account = f"acct-{creative % ACCOUNTS}"
    version = version if version is not None else i // CREATIVES + 1
    body = sync_request(account, [display_creative(f"c{creative}", url=f"https://cdn.example/{creative}/v{version}.png")],
                        idempotency_key=f"crash-test-key-{i:06d}")
    event = LibraryCommand(command_id=f"cmd-{i}", account_id=account, principal_id="p", operation=LibraryOperation.SYNC_CREATIVES,
                           request_json=json.dumps(body), received_at=datetime.now(UTC))
    return codecs.key("library_commands").encode(account), codecs.value("library_commands").encode(event)


async def test_killed_worker_resumes_without_losing_or_double_applying(worker, settings, tmp_path):
    codecs = Codecs(prefix=settings.topic_prefix)
    commands, results_topic = topic_name(settings, "library_commands"), topic_name(settings, "task_results")
    task_id = lambda r: codecs.value("task_results").decode(r.value).task_id  # noqa: E731

    await produce(settings.bootstrap_servers, commands, [command(i, codecs) for i in range(EVENTS // 2)])
    seen = await read_topic(settings.bootstrap_servers, results_topic, until=lambda r: len(r) >= 500, decode=task_id)
    # Kill it after its first offset commit, so that the restart resumes from committed offsets.
    while not any(committed for _, committed in
                  (await group_progress(settings.bootstrap_servers, settings.app_id, commands)).values()):
        await asyncio.sleep(0.1)
    worker.kill9()  # mid-stream: offsets, table writes and outputs are cut wherever they are
    assert len(set(seen)) < EVENTS
    await produce(settings.bootstrap_servers, commands, [command(i, codecs) for i in range(EVENTS // 2, EVENTS)])

    restarted = WorkerProcess(settings, tmp_path / "worker-restarted.log").start()
    try:
        expected = {f"cmd-{i}" for i in range(EVENTS)}
        try:
            done = await read_topic(settings.bootstrap_servers, results_topic, until=lambda r: expected <= set(r),
                                    decode=task_id, timeout_s=240)
        except TimeoutError as timeout:  # say where it stuck: per-partition end and committed offsets
            progress = await group_progress(settings.bootstrap_servers, settings.app_id, commands)
            raise AssertionError(f"the restarted worker did not finish; (end, committed) by partition: {progress}") \
                from timeout
        assert set(done) == expected  # every event processed at least once

        # Nothing double-applied: each creative went through versions 1..20 exactly, without gaps or extra bumps
        # (a redelivered command is recognised and re-emits its original event, same id, same version).
        state = await read_topic(settings.bootstrap_servers, topic_name(settings, "creative_state"),
                                 until=lambda r: len({e.event_id for e in r}) >= EVENTS, timeout_s=120,
                                 decode=lambda r: codecs.value("creative_state").decode(r.value))
        versions_by_event: dict[str, set[int]] = defaultdict(set)
        versions_by_creative: dict[str, set[int]] = defaultdict(set)
        for event in state:
            versions_by_event[event.event_id].add(event.content_version)
            versions_by_creative[f"{event.account_id}/{event.creative_id}"].add(event.content_version)
        assert all(len(v) == 1 for v in versions_by_event.values()), "a redelivered event kept its version"
        assert len(versions_by_creative) == CREATIVES
        assert all(v == set(range(1, UPDATES_PER_CREATIVE + 1)) for v in versions_by_creative.values())

        # The changelog holds the right final state of every row.
        table = TABLES[0]
        changelog = await read_topic(settings.bootstrap_servers, table.changelog_name(settings.app_id),
                                     until=lambda r: len(r) >= EVENTS, timeout_s=120,
                                     decode=lambda r: codecs.schema("stored_creative").decode(r.value))
        final = {}
        for row in changelog:
            final[f"{row.account_id}/{row.creative_id}"] = row
        assert len(final) == CREATIVES
        assert {row.content_version for row in final.values()} == {UPDATES_PER_CREATIVE}

        # The restarted worker works from the restored table: one more change per creative is version 21.
        await produce(settings.bootstrap_servers, commands,
                      [command(EVENTS + i, codecs, version=UPDATES_PER_CREATIVE + 1) for i in range(CREATIVES)])
        after = await read_topic(settings.bootstrap_servers, topic_name(settings, "creative_state"), timeout_s=120,
                                 until=lambda r: sum(1 for e in r if e.command_id.startswith("cmd-") and
                                                     int(e.command_id[4:]) >= EVENTS) >= CREATIVES,
                                 decode=lambda r: codecs.value("creative_state").decode(r.value))
        latest = [e for e in after if int(e.command_id[4:]) >= EVENTS]
        assert {e.content_version for e in latest} == {UPDATES_PER_CREATIVE + 1}
    finally:
        restarted.stop(grace_s=0)
        await asyncio.sleep(0)
