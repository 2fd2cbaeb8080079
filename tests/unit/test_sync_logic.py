"""The sync engine's pure rules: queue batching that replays identically, payloads per AdCP
version, per-creative outcomes, retry delays, the circuit breaker."""
from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from creative_sync.samples import display_creative, video_creative
from streams.sync import logic
from streams.sync.logic import CallFailure, CircuitBreaker, apply_entry, build_batch, results_for
from topics.catalogue import Codecs
from topics.events import SyncItem, SyncJob, SyncOutcome, SyncResultBatch, SyncTrigger

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def job(creative_id: str, version: int = 1, creative: dict | None = None, agent: str = "ag", account: str = "acct") -> SyncJob:
    creative = creative or display_creative(creative_id)
    return SyncJob(job_id=logic.job_id_for("MANUAL", account, creative_id, version, agent), sales_agent_id=agent,
                   account_id=account, creative_id=creative_id, content_version=version, trigger=SyncTrigger.MANUAL,
                   requested_at=T0, creative_json=json.dumps(creative))


def replay(entries):
    queue, stored, batches = None, {}, []
    for offset, entry in enumerate(entries):
        change = apply_entry(queue, entry, partition=3, offset=offset)
        if change is None:
            continue
        queue = change.queue
        stored.update(change.store)
        for seq in change.drop:
            stored.pop(seq)
        batches += change.closed
    return queue, stored, batches


def test_a_full_batch_closes_at_100_jobs_and_a_flush_closes_the_rest():
    entries = [job(f"c{i}") for i in range(130)] + [logic.flush_entry("ag", "acct", T0)]
    queue, stored, batches = replay(entries)
    assert [(b.first_seq, b.last_seq) for b in batches] == [(0, 99), (100, 129)]
    assert len({b.idempotency_key for b in batches}) == 2 and len(stored) == 130


def test_replaying_the_same_entries_rebuilds_the_same_batches_under_the_same_keys():
    entries = [job(f"c{i}") for i in range(30)] + [logic.flush_entry("ag", "acct", T0)] + [job("late")]
    assert replay(entries)[2] == replay(entries)[2]


def test_a_redelivered_entry_is_not_applied_twice():
    queue, _, _ = replay([job("a"), job("b")])
    assert apply_entry(queue, job("b"), partition=3, offset=1) is None
    assert apply_entry(queue, job("c"), partition=3, offset=2).queue.next_seq == 3


def test_entries_published_again_at_new_offsets_are_queued_once():
    """A trigger the matcher handles twice (killed before its offset was committed) publishes the
    same entries again: the queue knows them by id and does not batch them a second time."""
    first = [job(f"c{i}") for i in range(3)]
    queue, stored, _ = replay([*first, *first, logic.flush_entry("ag", "acct", T0)])
    assert len(stored) == 3 and queue.batches[0].last_seq == 2
    again = SyncJob(**{**job("c0").model_dump(), "job_id": logic.job_id_for("MANUAL", "acct", "c0", 1, "ag", "another")})
    assert apply_entry(queue, again, partition=3, offset=10).store  # another trigger of the same creative is a new job
    many = [job(f"d{i}") for i in range(logic.RECENT_ENTRIES + 5)]
    assert len(replay(many)[0].recent_entries) == logic.RECENT_ENTRIES  # bounded


def test_done_forgets_the_batch_and_its_jobs():
    entries = [job("a"), job("b"), logic.flush_entry("ag", "acct", T0)]
    queue, stored, batches = replay(entries)
    change = apply_entry(queue, logic.done_entry("ag", "acct", batches[0].batch_id, T0), partition=3, offset=10)
    assert change.queue.batches == [] and sorted(change.drop) == [0, 1]


def test_a_replayed_entry_names_the_number_it_was_stored_under_while_it_is_owed():
    """What the stream needs to store again an entry whose own changelog record a crash lost
    while the queue's (the other topic) got through."""
    many = [job(f"d{i}") for i in range(logic.RECENT_ENTRIES + 5)]  # recent_entries full: numbers still right
    queue, _, batches = replay([*many, job("a"), logic.flush_entry("ag", "acct", T0), job("b")])
    seq_of_a, seq_of_b = logic.RECENT_ENTRIES + 5, logic.RECENT_ENTRIES + 6
    assert logic.owed_seq(queue, job("a")) == seq_of_a  # in a closed batch, not delivered yet
    assert logic.owed_seq(queue, job("b")) == seq_of_b  # in the open batch
    assert logic.owed_seq(queue, job("never")) is None
    assert logic.owed_seq(queue, logic.flush_entry("ag", "acct", T0)) is None
    assert logic.owed_seq(None, job("a")) is None
    last = next(b for b in batches if b.first_seq <= seq_of_a <= b.last_seq)
    done = apply_entry(queue, logic.done_entry("ag", "acct", last.batch_id, T0), partition=3, offset=10_000).queue
    assert logic.owed_seq(done, job("a")) is None  # delivered: its entry left the table on purpose
    assert logic.owed_seq(done, job("b")) == seq_of_b


def test_a_queue_shows_whether_an_earlier_owner_delivered_from_it():
    """After a restart the supervisor sweeps for reviews only where batches were settled before."""
    queue, _, batches = replay([job("a"), job("b"), logic.flush_entry("ag", "acct", T0), job("c")])
    assert not logic.delivered_before(queue)  # one batch closed, none settled, one open
    done = apply_entry(queue, logic.done_entry("ag", "acct", batches[0].batch_id, T0), partition=3, offset=10).queue
    assert logic.delivered_before(done)
    assert not logic.delivered_before(logic.empty_queue("ag", "acct"))
    one, _, (only,) = replay([job("a"), logic.flush_entry("ag", "acct", T0)])
    settled_all = apply_entry(one, logic.done_entry("ag", "acct", only.batch_id, T0), partition=3, offset=10).queue
    assert settled_all.batches == [] and logic.delivered_before(settled_all)


def items(*creative_ids: str, version: int = 1) -> list[SyncItem]:
    return [SyncItem(job_id=logic.job_id_for("MANUAL", "acct", c, version, "ag"), creative_id=c, content_version=version,
                     creative_json=json.dumps(display_creative(c))) for c in creative_ids]


def test_a_request_becomes_one_entry_per_100_jobs():
    entries = logic.deliver_entries("ag", "acct", items(*(f"c{i}" for i in range(250))), trigger=SyncTrigger.MANUAL, now=T0)
    assert [len(e.jobs()) for e in entries] == [100, 100, 50]
    assert len({e.job_id for e in entries}) == 3


def test_an_entry_that_would_overflow_the_open_batch_closes_it_first_and_a_full_one_closes_at_once():
    def entry(n: int, start: int) -> SyncJob:
        return logic.deliver_entries("ag", "acct", items(*(f"c{start + i}" for i in range(n))),
                                     trigger=SyncTrigger.MANUAL, now=T0)[0]
    queue, stored, batches = replay([entry(60, 0), entry(60, 100), entry(100, 200), entry(30, 400),
                                     logic.flush_entry("ag", "acct", T0)])
    assert [(b.first_seq, b.last_seq) for b in batches] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert queue.open_items == 0 and len({b.idempotency_key for b in batches}) == 4
    sizes = [sum(len(stored[seq].jobs()) for seq in range(b.first_seq, b.last_seq + 1)) for b in batches]
    assert sizes == [60, 60, 100, 30] and max(sizes) <= logic.MAX_BATCH
    small = replay([entry(40, 0), entry(50, 100), entry(10, 200)])
    assert [(b.first_seq, b.last_seq) for b in small[2]] == [(0, 2)]  # 100 jobs from three entries: one call


def test_an_entry_of_many_jobs_is_delivered_as_one_batch_of_them():
    entries = logic.deliver_entries("ag", "acct", items("a", "b", "c"), trigger=SyncTrigger.MANUAL, now=T0)
    _, stored, batches = replay([*entries, logic.flush_entry("ag", "acct", T0)])
    batch = build_batch(batches[0], "ag", "acct", [stored[0]], "3.2")
    assert [c["creative_id"] for c in batch.payload["creatives"]] == ["a", "b", "c"]
    results = results_for(batch, attempt=1, now=T0, response={"creatives": [
        {"creative_id": c, "action": "created"} for c in "abc"]})
    assert [(r.sales_agent_id, r.account_id, r.creative_id) for r in results] == [("ag", "acct", c) for c in "abc"]


def test_a_deep_copy_of_a_call_copies_its_envelope_but_shares_its_creatives():
    # The adcp client deep-copies each request (up to three times) before it is sent.
    entries = logic.deliver_entries("ag", "acct", items("a", "b"), trigger=SyncTrigger.MANUAL, now=T0)
    _, stored, batches = replay([*entries, logic.flush_entry("ag", "acct", T0)])
    payload = build_batch(batches[0], "ag", "acct", [stored[0]], "3.2").payload
    copied = copy.deepcopy(payload)
    assert copied == payload and copied["account"] is not payload["account"]
    assert copied["creatives"] is payload["creatives"]
    assert json.loads(json.dumps(copied)) == payload  # still plain JSON on the wire


def test_results_are_grouped_by_the_partition_of_their_creative_each_group_keyed_to_land_there():
    entries = logic.deliver_entries("ag", "acct", items(*(f"c{i}" for i in range(40))), trigger=SyncTrigger.MANUAL, now=T0)
    _, stored, batches = replay([*entries, logic.flush_entry("ag", "acct", T0)])
    batch = build_batch(batches[0], "ag", "acct", [stored[0]], "3.2")
    results = results_for(batch, attempt=1, now=T0, failure=CallFailure("down"))
    partition_of = lambda key: sum(key.encode()) % 8  # noqa: E731 - any deterministic partitioner
    groups = logic.by_partition(results, partition_of)
    assert sorted(r.creative_id for _, g in groups for r in g.results) == sorted(r.creative_id for r in results)
    for key, group in groups:
        assert {partition_of(logic.result_key(r)) for r in group.results} == {partition_of(key)}
    assert len(groups) == len({partition_of(logic.result_key(r)) for r in results}) < len(results)


def test_an_empty_flush_closes_nothing():
    assert replay([logic.flush_entry("ag", "acct", T0)])[2] == []


def test_the_payload_carries_the_latest_version_once_lenient_and_versioned():
    jobs = [job("a", 1), job("a", 2, display_creative("a", name="v2")), job("b")]
    _, _, batches = replay([*jobs, logic.flush_entry("ag", "acct", T0)])
    batch = build_batch(batches[0], "ag", "acct", jobs, "3.2")
    assert [c["name"] for c in batch.payload["creatives"]] == ["v2", "Banner b"]
    assert batch.payload["validation_mode"] == "lenient" and batch.payload["adcp_version"] == "3.2"
    assert batch.payload["idempotency_key"] == batches[0].idempotency_key and len(batch.jobs["a"]) == 2


def test_a_legacy_agent_gets_format_id_instead_of_format_kind():
    creative, why = logic.for_version(video_creative("v"), "3.1")
    assert why is None and "format_kind" not in creative and creative["format_id"]["id"]
    banner = {**display_creative("d", width=728, height=90), "format_kind": "image"}
    banner.pop("format_id")
    assert logic.for_version(banner, "3.0")[0]["format_id"]["id"] == "display_728x90"
    assert logic.for_version(video_creative("v"), "3.2")[0]["format_kind"] == "video_hosted"


@pytest.mark.parametrize("ours,theirs,expected", [
    (["3.0", "3.1", "3.2"], ["3.0", "3.1"], "3.1"), (["3.0", "3.1", "3.2"], ["3.2.1", "3.1"], "3.2"),
    (["3.0", "3.1", "3.2"], ["2.5"], None)])
def test_negotiation_picks_the_highest_common_version(ours, theirs, expected):
    assert logic.negotiate(ours, theirs) == expected


def test_results_follow_the_agents_per_creative_answer():
    jobs = [job("ok"), job("bad")]
    _, _, batches = replay([*jobs, logic.flush_entry("ag", "acct", T0)])
    batch = build_batch(batches[0], "ag", "acct", jobs, "3.2")
    response = {"creatives": [{"creative_id": "ok", "action": "created", "status": "pending_review", "platform_id": "p-1"},
                              {"creative_id": "bad", "action": "failed",
                               "errors": [{"code": "TOO_SMALL", "message": "Image too small", "recovery": "terminal"}]}]}
    by_id = {r.creative_id: r for r in results_for(batch, attempt=1, now=T0, response=response)}
    assert by_id["ok"].outcome is SyncOutcome.SYNCED and by_id["ok"].approval_status == "pending_review"
    assert by_id["ok"].platform_creative_id == "p-1"
    assert by_id["bad"].outcome is SyncOutcome.FAILED and by_id["bad"].reason == "Image too small"
    failed = results_for(batch, attempt=2, now=T0, failure=CallFailure("down", "transient"))
    assert {r.outcome for r in failed} == {SyncOutcome.FAILED} and failed[0].result_id != by_id["ok"].result_id
    codec = Codecs().value("sync_results")  # they survive the topic's codec
    record = SyncResultBatch(results=[*by_id.values(), *failed])
    assert codec.decode(codec.encode(record)) == record


def test_retry_delays_grow_are_capped_and_honour_retry_after():
    delays = [logic.retry_delay(a, jitter=1.0) for a in range(1, 8)]
    assert delays == sorted(delays) and delays[-1] == 10.0 and delays[0] == 0.5
    assert logic.retry_delay(1, jitter=0.0, retry_after_s=7) == 7


def test_the_breaker_opens_after_repeated_failures_and_half_opens_after_the_cool_down():
    breaker = CircuitBreaker(threshold=3, cool_down=timedelta(seconds=10))
    for _ in range(3):
        assert breaker.allows(T0)
        breaker.failed(T0)
    assert not breaker.allows(T0 + timedelta(seconds=5))
    assert breaker.state(T0 + timedelta(seconds=11)) == "half_open"
    breaker.failed(T0 + timedelta(seconds=11))  # the trial failed: open again
    assert not breaker.allows(T0 + timedelta(seconds=12))
    breaker.succeeded()
    assert breaker.state(T0) == "closed"
