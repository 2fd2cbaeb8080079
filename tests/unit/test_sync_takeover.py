"""A sync supervisor and the tables it works from during a rebalance, without a broker: an agent
whose queue was just taken over waits for faust to finish restoring its tables, an agent kept
through the rebalance goes on, and a batch whose entries are not all in the table is never sent
in part and settled (what lost deliveries in a failover: tests/e2e/test_failover.py); an entry a
crash lost after its queue recorded it is stored again from its replay."""
from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from creative_sync.settings import Settings
from streams.metrics import WorkerMetrics
from streams.sync import logic
from streams.sync.agent import AgentSupervisor, SyncEngine
from topics.catalogue import Codecs
from topics.events import AgentQueue, QueuedBatch, SyncJob

JOBS_TOPIC = "t-sync_jobs"


class Table:
    """What stored_row reads of a faust table: `.data`, a mapping."""

    def __init__(self, rows: dict | None = None) -> None:
        self.data = dict(rows or {})
        self.reads = 0

    def items(self):  # noqa: ANN201
        return self.data.items()


class CountingRows(dict):
    def __init__(self, table: Table, rows: dict) -> None:
        super().__init__(rows)
        self.table = table

    def __contains__(self, key: object) -> bool:
        self.table.reads += 1
        return super().__contains__(key)


def pipeline(assigned: set[int], *, rebalancing: bool, queues: dict | None = None, pending: dict | None = None):  # noqa: ANN201
    codecs = Codecs(prefix="t-")
    queue_table, pending_table = Table(), Table()
    queue_table.data = CountingRows(queue_table, queues or {})
    pending_table.data = CountingRows(pending_table, pending or {})
    consumer = SimpleNamespace(assignment=lambda: {TP(JOBS_TOPIC, p) for p in assigned})
    published = []

    async def publish(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        published.append(args)

    written = []

    async def write_rows(table_name: str, rows, *, partition: int) -> None:  # noqa: ANN001
        tables = {"sync_queues": queue_table, "sync_pending": pending_table}
        for key, value, *_ in rows:
            written.append((table_name, key))
            if value is None:
                tables[table_name].data.pop(key, None)
            else:
                tables[table_name].data[key] = value
    return SimpleNamespace(
        app=SimpleNamespace(consumer=consumer, rebalancing=rebalancing), settings=Settings(), codecs=codecs,
        directory=SimpleNamespace(get=lambda agent_id: None, credentials={}), metrics=WorkerMetrics(registry=None),
        topics={"sync_jobs": SimpleNamespace(get_topic_name=lambda: JOBS_TOPIC)},
        tables={"sync_queues": queue_table, "sync_pending": pending_table}, publish=publish, published=published,
        write_rows=write_rows, written=written, as_stored=lambda table_name, received: None)


AGENT, ACCOUNT = "agent-a", "acct-1"


def partition() -> int:
    return Codecs(prefix="t-").partition_of("sync_jobs")(AGENT)


async def test_an_agent_taken_over_waits_until_its_tables_are_restored() -> None:
    p = pipeline({partition()}, rebalancing=True)
    engine = SyncEngine(p)
    engine.assigned({partition()})  # newly here: faust is restoring its tables from the changelog
    supervisor = AgentSupervisor(engine, AGENT)
    assert not engine.tables_complete(AGENT)
    assert await supervisor._step() == 0.5
    assert p.tables["sync_queues"].reads == 0 and p.tables["sync_pending"].reads == 0  # nothing read meanwhile

    p.app.rebalancing = False  # faust ended the rebalance: every assigned table is restored
    assert engine.tables_complete(AGENT)
    assert await supervisor._step() == 1.0  # it works now (the agent is not registered in this fake)


async def test_an_agent_kept_through_a_rebalance_goes_on_and_one_given_away_does_not_come_back_complete() -> None:
    p = pipeline({partition()}, rebalancing=False)
    engine = SyncEngine(p)
    assert engine.tables_complete(AGENT)
    p.app.rebalancing = True  # another worker joined or left
    engine.revoked({partition()})
    engine.assigned({partition()})  # given back: its tables never left this worker
    assert engine.tables_complete(AGENT)

    engine.revoked({partition()})
    engine.assigned(set())  # given away ...
    engine.assigned({partition()})  # ... and back in a later rebalance: restored again first
    assert not engine.tables_complete(AGENT)


async def test_a_batch_missing_entries_in_the_table_is_not_sent_nor_settled() -> None:
    batch = QueuedBatch(batch_id="b1", idempotency_key="k1", first_seq=0, last_seq=1)
    queue = AgentQueue(sales_agent_id=AGENT, account_id=ACCOUNT, next_seq=2, open_from=2, batches=[batch])
    entry = SyncJob(job_id="e0", kind="DELIVER", sales_agent_id=AGENT, account_id=ACCOUNT, creative_id="c1",
                    content_version=1, trigger="MANUAL", requested_at="2026-12-04T00:00:00Z")
    p = pipeline({partition()}, rebalancing=False, queues={logic.queue_key(AGENT, ACCOUNT): queue},
                 pending={logic.pending_key(AGENT, ACCOUNT, 0): entry})  # seq 1 not (yet) in the table
    supervisor = AgentSupervisor(SyncEngine(p), AGENT)
    supervisor._client_for = lambda agent: (_ for _ in ()).throw(AssertionError("no call may be made"))
    assert await supervisor._deliver(SimpleNamespace(), ACCOUNT, batch) is False
    assert p.published == []  # no result, no DONE entry: the batch stays queued for when its entries are here


async def test_an_entry_lost_in_a_crash_after_its_queue_recorded_it_is_stored_again_from_its_replay() -> None:
    entry = SyncJob(job_id="e0", kind="DELIVER", sales_agent_id=AGENT, account_id=ACCOUNT, creative_id="c1",
                    content_version=1, trigger="MANUAL", requested_at="2026-12-04T00:00:00Z")
    p = pipeline({partition()}, rebalancing=False)
    engine = SyncEngine(p)
    await engine.take(entry, partition=partition(), offset=7, received=b"")
    queue_key, entry_key = logic.queue_key(AGENT, ACCOUNT), logic.pending_key(AGENT, ACCOUNT, 0)
    assert p.tables["sync_queues"].data[queue_key].last_offset == 7 and entry_key in p.tables["sync_pending"].data

    # The restart after the crash: the queue's changelog record got through, the entry's did not.
    del p.tables["sync_pending"].data[entry_key]
    engine = SyncEngine(p)
    p.written.clear()
    await engine.take(entry, partition=partition(), offset=7, received=b"")  # the replay, skipped as applied
    assert p.written == [("sync_pending", entry_key)]  # ... but its entry stored again, under its number
    assert p.tables["sync_pending"].data[entry_key] == entry

    p.written.clear()
    await engine.take(entry, partition=partition(), offset=9, received=b"")  # published again: nothing lost now
    assert p.written == []
