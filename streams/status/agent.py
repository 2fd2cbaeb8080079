"""The status processor: where each creative stands with each sales agent, and the re-syncs a
content change needs.

Reads (all keyed account_id/creative_id, co-partitioned): content changes (the library's changes
that re-sync; creations and metadata changes never come here), sync results (records
of results grouped by partition), approval events; when a creative is rejected, its campaigns (asked of the worker that owns its
account) and the status of their other creatives (asked of the workers that own them). Writes: the sync_state table, sync_status (a
creative's rows with every agent, on change), sync triggers (re-syncs of changed content to the
agents that have the creative, content-change triggers for the matcher: one per account and set of
agents in a take), notifications (the
creative's transitions: syncs started, completed, failed; approvals and rejections).

Each processor works on what arrived together (streams.runtime.consume_batches): the results of
ten agents about one creative become one table write and one status record, not ten.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from faust.types import EventT
from mode.utils.collections import LRUCache

from streams import retention
from streams.notify import agent as notify
from streams.notify.logic import CampaignRef, creative_notifications
from streams.runtime import consume_batches, stored_row, tables_restoring, writing_as
from streams.campaigns import reads as campaign_reads
from streams.owner_client import OwnersUnavailable
from streams.status import logic
from streams.status import reads as status_reads
from streams.status.logic import StatusChange
from streams.status.store import ArchivedIndex
from streams.matching.plan import content_change_triggers
from topics.codec import RowCachingCodec
from topics.events import ArchivedCreative, CreativeChanged, CreativeSyncState, SyncItem, SyncResult

log = logging.getLogger(__name__)

#: (account, creative, the event it came from, what it does to the creative's state)
Update = tuple[str, str, EventT, Callable[[CreativeSyncState], StatusChange]]


@dataclass
class _Pending:
    before: CreativeSyncState
    state: CreativeSyncState
    event: EventT  # the latest event about the creative: its partition is the creative's
    rows: int = 0


@dataclass
class Siblings:
    """What telling a rejection needs: the creatives' campaigns, and their creatives' status rows."""

    campaigns: dict[tuple[str, str], list[campaign_reads.CampaignDetail]] = field(default_factory=dict)
    rows: dict[tuple[str, str], list] = field(default_factory=dict)


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    app, codecs, metrics = pipeline.app, pipeline.codecs, pipeline.metrics
    states, archived = pipeline.tables["sync_state"], pipeline.tables["archived_creatives"]
    status_key, plain_status = codecs.key("sync_status"), codecs.value("sync_status")
    # The same schema, framing and subject, with each row's bytes kept: a write re-encodes only
    # the rows that changed.
    status_value = RowCachingCodec(plain_status.family, CreativeSyncState, registry=plain_status.registry,
                                   subject=plain_status.subject)
    trigger_key, trigger_value = codecs.key("sync_triggers"), codecs.value("sync_triggers")
    # The three processors share the table and a take's writes come after awaited sends: one at a
    # time, or one could overwrite what another wrote meanwhile.
    one_at_a_time = asyncio.Lock()
    # The states last written, decoded: a creative delivered to ten agents is read back some twenty
    # times (each agent's result, then each review), and decoding its rows from the store cost ~10 %
    # of the worker. Only these processors write the table, so the cache is never stale while the
    # partitions stay here; a rebalance empties it.
    recent: LRUCache[str, CreativeSyncState] = LRUCache(limit=pipeline.settings.status_cache_size)

    @app.on_partitions_revoked.connect
    async def forget_states(app, revoked, **kwargs):  # noqa: ANN001
        recent.clear()
        swept.clear()  # partitions may come here with rows a former owner had not swept

    def current_state(key: str, event: EventT) -> CreativeSyncState | None:
        state = recent.get(key)
        return state if state is not None else stored_row(states, key, event)

    async def apply(updates: Iterable[Update], cause: str) -> None:
        async with one_at_a_time:
            try:
                await _apply(updates, cause)
            except BaseException:
                recent.clear()  # a row may be in the store and not (yet) here: read them again
                raise

    async def _apply(updates: Iterable[Update], cause: str) -> None:
        """Apply a take's updates in order, then write each creative that changed once."""
        pending: dict[str, _Pending] = {}
        resyncs: dict[tuple[str, str], list[SyncItem]] = {}  # (agent, account) -> jobs
        for account_id, creative_id, event, step in updates:
            key = logic.state_key(account_id, creative_id)
            work = pending.get(key)
            if work is None:
                before = current_state(key, event) or logic.empty_state(account_id, creative_id)
                work = pending[key] = _Pending(before, before, event)
            change = step(work.state)
            work.state, work.event, work.rows = change.state, event, work.rows + len(change.rows)
            for seconds in change.decided_after_s:
                metrics.approval_latency.observe(seconds)
            for agent_id, job in change.resyncs:
                resyncs.setdefault((agent_id, account_id), []).append(job)
        now = datetime.now(UTC)
        # The re-syncs go to the matcher, as content-change triggers on its documented topic (keyed
        # by account: it reads the new version where the library keeps it, and matches it again: a
        # version that no longer fits an agent is skipped there, with the reason). Triggers before
        # state: a crash in between replays the take, which triggers the same jobs again rather
        # than never.
        for trigger in content_change_triggers(resyncs, now):
            await pipeline.publish("sync_triggers", trigger_key.encode(trigger.account_id), trigger_value.encode(trigger))
        names = {a.sales_agent_id: a.name for a in pipeline.directory.active()}
        others = await campaign_siblings(pending)
        rows: dict[int, list[tuple[str, _Pending, bytes | None]]] = {}  # partition -> the take's rows there
        for key, work in pending.items():
            if work.state == work.before:
                continue  # late, redelivered or irrelevant: no write at all (most library changes)
            for note in creative_notifications(work.before, work.state, names=names, now=now,
                                               losing_last_approval=lambda agent, s=work.state: left_without_approval(s, agent, others)):
                await notify.publish(pipeline, note)
            encoded, as_row = pipeline.row_bytes("sync_state", work.state, like=status_value)
            await pipeline.publish("sync_status", status_key.encode(key), encoded)
            rows.setdefault(work.event.message.partition, []).append((key, work, as_row))
            metrics.status_changes.labels(cause).inc(work.rows)
            metrics.state_writes.labels(cause).inc()
        # The table last, one write per partition (what it remembers of the changelog is set once
        # per write): a crash before it replays the take, which publishes the same records again.
        for partition, written in rows.items():
            with writing_as(written[-1][1].event):  # the creatives' partition, whatever else the take held
                await pipeline.write_rows("sync_state", [(key, work.state, as_row) for key, work, as_row in written],
                                          partition=partition)
            for key, work, _ in written:
                recent[key] = work.state

    # The removed agents whose rows this worker has dropped from the partitions it owns, with the
    # time of that removal (an id registered again and removed again is swept again).
    swept: dict[str, datetime] = {}
    results_topic = pipeline.topics["sync_results"].get_topic_name()
    partition_of = codecs.partition_of("sync_results")

    @app.timer(pipeline.settings.retention_sweep_s)
    async def forget_removed_agents() -> None:
        """Status rows of a sales agent removed longer than the status retention ago are dropped from
        every creative's state on this worker's partitions (a state left with no row is removed).
        One walk of the owned states per newly expired agent (removals are rare), not per sweep;
        the walk holds no copy of the states (RocksDB iterates a snapshot; the tests' memory store, a
        dict, must not lose a key mid-walk, and holds fewer than 1,000) and rewrites them 1,000 at
        a time, each read again under the processors' lock, so that no processor waits for the walk
        and no write of theirs is overwritten by it."""
        if tables_restoring(app):
            return
        cutoff = datetime.now(UTC) - timedelta(days=pipeline.settings.status_retention_days)
        removed = logic.removed_before(pipeline.directory.agents.items.values(), cutoff)
        expired = frozenset(a for a, when in removed.items() if swept.get(a) != when)
        if not expired:
            return
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == results_topic}
        dropped, candidates = 0, []
        for walked, (key, state) in enumerate(states.items(), 1):
            if partition_of(key) in owned and logic.without_agents(state, expired) is not state:
                candidates.append(key)
            if len(candidates) >= 1000:
                dropped += await drop_rows(candidates, expired)
                candidates = []
            if walked % 1000 == 0:
                await asyncio.sleep(0)  # a long walk lets the processors in
        dropped += await drop_rows(candidates, expired)
        swept.update({a: removed[a] for a in expired})
        metrics.expired.labels("sync_state").inc(dropped)
        log.info("dropped %d status rows of %d sales agents removed before %s", dropped, len(expired), cutoff)

    async def drop_rows(keys: list[str], agent_ids: frozenset[str]) -> int:
        """The states of `keys` rewritten without the rows of `agent_ids`; how many rows went."""
        changed: dict[int, list[tuple[str, CreativeSyncState | None]]] = {}
        dropped = 0
        async with one_at_a_time:
            for key in keys:
                state = recent.get(key) or stored_row(states, key)
                after = logic.without_agents(state, agent_ids) if state is not None else state
                if after is not state:
                    changed.setdefault(partition_of(key), []).append((key, after))
                    dropped += len(state.rows) - (len(after.rows) if after is not None else 0)
            for partition, rows in changed.items():
                await pipeline.write_rows("sync_state", rows, partition=partition)
                for key, _ in rows:
                    recent.pop(key, None)
        return dropped

    async def campaign_siblings(pending: dict[str, _Pending]) -> Siblings:
        """The campaigns of the take's newly rejected creatives (asked of the owner of their account)
        and the status rows of those campaigns' other creatives (what left_without_approval weighs,
        asked of the workers that own them), with this take's own states over them. Unreadable (a
        rebalance): none, and a rejection is told without its campaigns."""
        rejected: dict[str, list[str]] = {}
        for work in pending.values():
            if logic.newly_rejected(work.before, work.state):
                rejected.setdefault(work.state.account_id, []).append(work.state.creative_id)
        found = Siblings()
        try:
            for account_id, creative_ids in rejected.items():
                campaigns = await campaign_reads.campaigns_of(pipeline.owners, account_id, creative_ids)
                found.campaigns.update({(account_id, c): details for c, details in campaigns.items()})
                wanted = sorted({c for details in campaigns.values() for d in details for c in d.assigned})
                rows = await status_reads.rows_of(pipeline.owners, account_id, wanted)
                found.rows.update({(account_id, c): r for c, r in rows.items()})
        except OwnersUnavailable as unavailable:
            log.info("rejections told without their campaigns: %s", unavailable)
            return Siblings()
        for work in pending.values():
            found.rows[(work.state.account_id, work.state.creative_id)] = list(work.state.rows)
        return found

    def left_without_approval(state: CreativeSyncState, agent_id: str, others: Siblings) -> list[CampaignRef]:
        """The campaigns with an active tactic on `agent_id` left with nothing to run there once this
        creative is rejected: no other creative approved, nor on its way (queued or under review).
        `others`: the creative's campaigns and their other creatives' status rows (campaign_siblings)."""
        found = []
        key = (state.account_id, state.creative_id)
        for detail in others.campaigns.get(key, ()):
            if not any(t.status == "active" and t.sales_agent_id == agent_id for t in detail.tactics):
                continue
            siblings = (r for c in detail.assigned if c != state.creative_id
                        for r in others.rows.get((state.account_id, c), ()) if r.sales_agent_id == agent_id)
            if not any(r.sync_status.value in ("PENDING", "SYNCING", "SYNCED") and r.approval_status not in ("rejected", "suspended")
                       for r in siblings):
                campaign = detail.campaign
                found.append(CampaignRef(campaign.entity_id, campaign.brand_agent_id, str(campaign.name)))
        return found

    async def on_changes(batch) -> None:  # noqa: ANN001
        now = datetime.now(UTC)
        await apply(((c.account_id, c.creative_id, event, lambda state, c=c: logic.apply_change(state, c, now))
                     for c, event in batch), "content")
        await mark_archived(batch)

    async def mark_archived(batch: list[tuple[CreativeChanged, EventT]]) -> None:
        """A creative with status rows that the library archives is remembered with the time, one that
        comes back is forgotten (logic.archive_mark): what forget_archived sweeps."""
        marks: dict[str, tuple[int, ArchivedCreative | None]] = {}  # key -> (partition, mark)
        async with one_at_a_time:
            for change, event in batch:
                key = logic.state_key(change.account_id, change.creative_id)
                marked = marks[key][1] if key in marks else stored_row(archived, key, event)
                state = current_state(key, event)
                after = logic.archive_mark(change, state is not None and bool(state.rows), marked)
                if after != marked:
                    marks[key] = (event.message.partition, after)
            by_partition: dict[int, list[tuple[str, ArchivedCreative | None]]] = {}
            for key, (partition, mark) in marks.items():
                by_partition.setdefault(partition, []).append((key, mark))
            for partition, rows in by_partition.items():
                await pipeline.write_rows("archived_creatives", rows, partition=partition)

    @app.timer(pipeline.settings.retention_sweep_s)
    async def forget_archived() -> None:
        """The status rows of a creative archived longer than the status retention ago go (a
        tombstone in the table and on the status topic), with its mark. The sweep reads only the
        expired marks: a range at the front of each account's index."""
        cutoff = datetime.now(UTC) - timedelta(days=pipeline.settings.status_retention_days)
        async with one_at_a_time:
            expired = retention.expired_keys(pipeline, "archived_creatives", "sync_results", cutoff,
                                             prefix_of=ArchivedIndex.prefix, row_key_of=logic.state_key)
            for partition, keys in expired.items():
                for key in keys:
                    await pipeline.publish("sync_status", status_key.encode(key), None)
                    recent.pop(key, None)
                await pipeline.write_rows("sync_state", [(key, None) for key in keys], partition=partition)
                await pipeline.write_rows("archived_creatives", [(key, None) for key in keys], partition=partition)
        gone = sum(len(keys) for keys in expired.values())
        if gone:
            metrics.expired.labels("sync_state").inc(gone)
            log.info("dropped the status of %d creatives archived before %s", gone, cutoff)

    async def on_results(batch) -> None:  # noqa: ANN001
        # A creative's results of the take, in order, applied together (with the last event about it:
        # they all came from its partition).
        by_creative: dict[tuple[str, str], tuple[list[SyncResult], EventT]] = {}
        for group, event in batch:
            for r in group.results:
                results = by_creative.get((r.account_id, r.creative_id), ([], event))[0]
                results.append(r)
                by_creative[(r.account_id, r.creative_id)] = (results, event)
        await apply(((account_id, creative_id, event, lambda state, rs=results: logic.apply_results(state, rs))
                     for (account_id, creative_id), (results, event) in by_creative.items()), "sync")

    async def on_approvals(batch) -> None:  # noqa: ANN001
        await apply(((a.account_id, a.creative_id, event, lambda state, a=a: logic.apply_approval(state, a))
                     for a, event in batch), "approval")

    creative_key = codecs.key("content_changes")

    def synced_somewhere(event: EventT) -> bool:
        """A content change matters here only for a creative with a status row (apply_change does
        nothing for the others): those are not decoded at all."""
        try:
            key = creative_key.decode(event.message.key)
        except Exception:  # an unreadable key: let the value's decoding decide (dead letter)
            return True
        return current_state(key, event) is not None

    # How long a take gathers events: the answers of many agents about one creative become one
    # write (a creative's state with ten rows costs ~0.4 ms to encode for table and topic, and
    # every write is also a status record the gateway reads and a notification or two). Content
    # changes are on the way to the re-syncs they cause, so they wait least. Sync results are on
    # nobody's way: under load the ten agents of a sync answer about a creative seconds apart, and
    # a take gathers them for up to 4 s; when quiet, 1 s without an answer ends it (a burst of
    # answers to one sync). A 30,000-delivery run wrote 6,800 states with a fixed 1 s take, ~5,500
    # with 2 s, 3,400-4,100 now, and a third fewer notifications; the CPU is what limits
    # deliveries (0.25 s of quiet ended takes mid-flow under load: 4,900). The status shows an
    # answer at most 4 s after it came, ~1 s on a quiet pipeline.
    for role, name, handle, wanted, within_s, quiet_s in (
            ("content_changes", "status-changes", on_changes, synced_somewhere, 0.05, None),
            ("sync_results", "status-results", on_results, None, 4.0, 1.0),
            ("approval_events", "status-approvals", on_approvals, None, 0.5, None)):
        def make(role: str = role, name: str = name, handle=handle, wanted=wanted, within_s: float = within_s,  # noqa: ANN001, ANN202 - one agent per topic
                 quiet_s: float | None = quiet_s):
            async def agent(stream):  # noqa: ANN001
                await consume_batches(stream, processor=name, codec=codecs.value(role), handle=handle,
                                      dead_letters=pipeline.dead_letters, metrics=metrics, max_events=2000,
                                      within_s=within_s, quiet_s=quiet_s, wanted=wanted)
            agent.__name__ = agent.__qualname__ = name.replace("-", "_")
            return app.agent(pipeline.topics[role], name=name)(agent)
        make()
