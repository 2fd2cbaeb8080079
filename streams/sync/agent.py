"""The sync processor: delivers creatives to sales agents, one owner per agent.

Reads: sync_jobs (keyed by sales agent: DELIVER entries of up to 100 jobs, FLUSH and DONE), the sales-agent
registry and credentials. Writes: the sync_queues and sync_pending tables, sync_results
(outcomes, one per job and attempt, one record per call and partition), approval_events (polled reviews), sales_agents (what
discovery learnt, and the live state of its calls: failing since, circuit), and its own FLUSH / DONE entries.

The stream only numbers jobs and closes batches (streams.sync.logic); the calls are made by
one supervisor task per agent, so a slow or dead agent holds up nobody else. A batch is sent
under the key made when it was closed, retried with backoff and jitter, behind a circuit
breaker, and settled with a DONE entry once its results are published.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
from datetime import UTC, datetime, timedelta

from mode.utils.collections import LRUCache

from streams.library.versions import SUPPORTED_VERSIONS
from streams.notify import agent as notify
from streams.notify.logic import agent_unavailable
from streams.runtime import consume, stored_row, tables_restoring
from streams.matching.logic import listed_formats
from streams.sync import logic
from streams.sync.client import AgentClient, CallError, discover
from topics.events import AgentQueue, ApprovalEvent, ApprovalSource, QueuedBatch, SalesAgent, SyncJob, SyncOutcome, SyncResult
from topics.ids import webhook_path

PROCESSOR = "sync"
_NEVER = datetime.min.replace(tzinfo=UTC)
log = logging.getLogger(__name__)


def now() -> datetime:
    return datetime.now(UTC)


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    app, codecs = pipeline.app, pipeline.codecs
    jobs_topic = pipeline.topics["sync_jobs"]
    engine = SyncEngine(pipeline)

    async def handle(entry: SyncJob, event) -> None:  # noqa: ANN001
        message = event.message
        await engine.take(entry, partition=message.partition, offset=message.offset, received=message.value)

    @app.agent(jobs_topic, name=PROCESSOR)
    async def sync(stream):  # noqa: ANN001
        await consume(stream, processor=PROCESSOR, codec=codecs.value("sync_jobs"), handle=handle,
                      dead_letters=pipeline.dead_letters, metrics=pipeline.metrics)

    @app.timer(1.0)
    async def supervise() -> None:
        engine.reconcile()

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **kwargs):  # noqa: ANN001
        engine.revoked({tp.partition for tp in revoked if tp.topic == jobs_topic.get_topic_name()})

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **kwargs):  # noqa: ANN001
        engine.assigned({tp.partition for tp in assigned if tp.topic == jobs_topic.get_topic_name()})

    pipeline.sync_engine = engine


class SyncEngine:
    """One supervisor per sales agent whose sync_jobs partition this worker owns."""

    def __init__(self, pipeline) -> None:  # noqa: ANN001
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.directory = pipeline.directory
        self.queues, self.pending = pipeline.tables["sync_queues"], pipeline.tables["sync_pending"]
        self.accounts: dict[str, set[str]] = {}  # agent -> accounts with a queue here
        self.supervisors: dict[str, AgentSupervisor] = {}
        self.partition_of = pipeline.codecs.partition_of("sync_jobs")  # agent id -> its partition
        self.result_partition = pipeline.codecs.partition_of("sync_results")
        # The DELIVER entries the stream just stored, as it decoded them: a supervisor sends them a
        # moment later, and decoding an entry of 100 creatives back from the store cost ~4 % of the
        # worker. Bounded (an agent down holds its backlog in the table, not here); a rebalance
        # empties it, and a miss reads the table.
        self._entries: LRUCache[str, SyncJob] = LRUCache(limit=pipeline.settings.sync_entry_cache_size)
        # Likewise the queues, which a supervisor looks at on every step.
        self._queues: LRUCache[str, AgentQueue] = LRUCache(limit=10_000)
        #: sync_jobs partitions whose tables here hold everything their changelogs do: those kept
        #: through a rebalance, and after it all the assigned ones (tables_complete)
        self._complete: set[int] = set()

    async def take(self, entry: SyncJob, *, partition: int, offset: int, received: bytes) -> None:
        """One entry of sync_jobs (`received`: its bytes) into the agent's queue and entries."""
        key = logic.queue_key(entry.sales_agent_id, entry.account_id)
        queue = self.queue(key)
        change = logic.apply_entry(queue, entry, partition=partition, offset=offset)
        as_received = self.pipeline.as_stored("sync_pending", received)  # the entry kept is this event's
        if change is None:
            await self._restore_lost(entry, queue, partition, as_received)
            return
        kept = {logic.pending_key(entry.sales_agent_id, entry.account_id, seq): job for seq, job in change.store.items()}
        dropped = [logic.pending_key(entry.sales_agent_id, entry.account_id, seq) for seq in change.drop]
        try:
            await self.pipeline.write_rows("sync_pending", [*((k, job, as_received if job is entry else None) for k, job in kept.items()),
                                                            *((k, None) for k in dropped)], partition=partition)
            self.entries_written(kept, dropped)
            await self.pipeline.write_rows("sync_queues", [(key, change.queue)], partition=partition)
            self.queue_written(key, change.queue)
        except BaseException:
            self.forget()  # the store may hold part of what failed: read it from there again
            raise
        self.wake(entry.sales_agent_id, entry.account_id)

    async def _restore_lost(self, entry: SyncJob, queue: AgentQueue | None, partition: int, as_received: bytes | None) -> None:
        """An entry the queue applied before, replayed: stored again if a crash lost it (logic.owed_seq)."""
        seq = logic.owed_seq(queue, entry)
        if seq is None:
            return
        key = logic.pending_key(entry.sales_agent_id, entry.account_id, seq)
        if self.entry(key) is not None:
            return
        log.warning("sales agent %s: queued entry %d was lost in a crash before it was stored; stored from its replay",
                    entry.sales_agent_id, seq)
        await self.pipeline.write_rows("sync_pending", [(key, entry, as_received)], partition=partition)
        self.entries_written({key: entry}, [])
        self.wake(entry.sales_agent_id, entry.account_id)

    def entries_written(self, kept: dict[str, SyncJob], dropped: list[str]) -> None:
        self._entries.update(kept)
        for key in dropped:
            self._entries.pop(key, None)

    def queue_written(self, key: str, queue: AgentQueue) -> None:
        self._queues[key] = queue

    def queue(self, key: str) -> AgentQueue | None:
        found = self._queues.get(key)
        return found if found is not None else stored_row(self.queues, key)

    def entry(self, key: str) -> SyncJob | None:
        found = self._entries.get(key)
        return found if found is not None else stored_row(self.pending, key)

    def _assigned(self) -> set[int]:
        topic_name = self.pipeline.topics["sync_jobs"].get_topic_name()
        return {tp.partition for tp in self.pipeline.app.consumer.assignment() if tp.topic == topic_name}

    def owned(self, agent_id: str) -> bool:
        return self.partition_of(agent_id) in self._assigned()

    def tables_complete(self, agent_id: str) -> bool:
        """Whether the agent's queue and entries here are whole. A partition taken over in a
        rebalance (a worker died, a restart) is restored from its changelog until faust ends the
        rebalance: meanwhile the tables hold a standby's lagging copy, where a batch can show in
        the queue before its entries (two changelogs, read at their own pace). A supervisor
        working from it sent an incomplete batch and settled the rest as done: lost deliveries (the
        likely cause of tests/e2e/test_failover.py's pairs once never all settling in CI)."""
        partition = self.partition_of(agent_id)
        if partition in self._complete:
            return True
        if tables_restoring(self.pipeline.app):
            return False
        self._complete = self._assigned()
        return partition in self._complete

    def wake(self, agent_id: str, account_id: str) -> None:
        self.accounts.setdefault(agent_id, set()).add(account_id)
        self._ensure(agent_id).wake()

    def reconcile(self) -> None:
        """Supervise every owned agent: registered ones (discovery, polling) and those with queues."""
        for key, queue in list(self.queues.items()):
            self.accounts.setdefault(queue.sales_agent_id, set()).add(queue.account_id)
        for agent_id in {a.sales_agent_id for a in self.directory.active()} | set(self.accounts):
            if self.owned(agent_id):
                self._ensure(agent_id).wake()
            elif agent_id in self.supervisors and not self.supervisors[agent_id].paused:  # paused: `assigned` decides
                self.supervisors.pop(agent_id).stop()

    def forget(self) -> None:
        """Drop what the stream last wrote: the next reads go to the tables."""
        self._entries.clear()
        self._queues.clear()

    def revoked(self, partitions: set[int]) -> None:
        """A rebalance begins: faust revokes every partition (eager rebalancing), most of which it
        gives back. The supervisors of those agents pause (a call under way finishes) rather than
        stop: stopped, they restarted only after the rebalance and the recovery of every newly
        assigned partition, and a worker's own agents waited seconds whenever another worker
        left (tests/e2e/test_failover.py)."""
        self.forget()
        for agent_id, supervisor in self.supervisors.items():
            if self.partition_of(agent_id) in partitions:
                supervisor.pause()

    def assigned(self, partitions: set[int]) -> None:
        """The rebalance is over: the agents whose queues stayed here go on; the others stop (their
        new owner resumes their queues from the tables). Those taken over wait for the restore
        of their tables (tables_complete)."""
        self._complete &= partitions
        for agent_id in list(self.supervisors):
            if self.partition_of(agent_id) in partitions:
                self.supervisors[agent_id].resume()
            elif self.supervisors[agent_id].paused:
                self.supervisors.pop(agent_id).stop()

    def _ensure(self, agent_id: str) -> "AgentSupervisor":
        supervisor = self.supervisors.get(agent_id)
        if supervisor is None or supervisor.finished:
            supervisor = self.supervisors[agent_id] = AgentSupervisor(self, agent_id)
            supervisor.start()
        return supervisor


class AgentSupervisor:
    """Everything this worker does with one sales agent: discovery, delivery, review polling."""

    def __init__(self, engine: SyncEngine, agent_id: str) -> None:
        self.engine, self.agent_id = engine, agent_id
        settings = engine.settings
        self.breaker = logic.CircuitBreaker(settings.sync_breaker_threshold,
                                            timedelta(seconds=settings.sync_breaker_cool_down_s))
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._client: AgentClient | None = None
        self._client_of: tuple | None = None
        self._flush_requested: dict[str, int] = {}  # account -> next_seq when the flush was asked
        self._open_seen: dict[str, tuple[int, datetime, datetime]] = {}  # account -> (next_seq, since, first seen)
        #: batches whose DONE entry is published but not yet applied by the stream: not sent again
        self._settled: set[str] = set()
        self._next_discovery: datetime = datetime.min.replace(tzinfo=UTC)
        self._discovery_failures = 0
        #: (account, creative) -> content version awaiting the agent's review: polled
        self.reviewing: dict[tuple[str, str], int] = {}
        self._next_poll = _NEVER
        self._polled_at: datetime | None = None
        #: accounts whose queue this supervisor has seen, and those of them delivered to by an earlier
        #: owner (streams.sync.logic.delivered_before): the next poll sweeps what changed there lately
        self._seen_accounts: set[str] = set()
        self._to_sweep: set[str] = set()
        self._outage_since: datetime | None = None  # an outage told: the circuit opened, or discovery failed, then
        self._revision: int | None = None  # the registration this supervisor last worked from
        self._formats_of: tuple | None = None  # (discovered formats JSON, listed formats parsed from it)
        #: what list_sales_agents shows of the agent's live state, as last published: (circuit, failing)
        self._live: tuple[str, bool] = ("closed", False)
        self._failing_since: datetime | None = None
        self._told_discovery_failed = False  # queued jobs were marked failed for this run of discovery failures
        self._running = asyncio.Event()  # cleared while a rebalance may move the agent's queue (pause)
        self._running.set()

    @property
    def _outage_since(self) -> datetime | None:
        return self._outage_began

    @_outage_since.setter
    def _outage_since(self, began: datetime | None) -> None:  # every change of it shows on the agent's gauge
        self._outage_began = began
        self.engine.pipeline.metrics.agent_available.labels(self.agent_id).set(0 if began else 1)

    @property
    def finished(self) -> bool:
        return self._task is not None and self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sync:{self.agent_id}")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        try:  # delivered by another worker now, or removed: this worker no longer tells its availability
            self.engine.pipeline.metrics.agent_available.remove(self.agent_id)
        except KeyError:
            pass

    def wake(self) -> None:
        self._wake.set()

    def pause(self) -> None:
        """No new step until `resume` (a rebalance: this agent's queue may be moving elsewhere)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    # -- the loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while True:
                await self._running.wait()
                self._wake.clear()
                try:
                    waited = await self._step()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug must not end delivery to this agent: log, pause, go on
                    log.exception("sync supervisor of %s failed a step", self.agent_id)
                    waited = 1.0
                if waited:
                    try:
                        await asyncio.wait_for(self._wake.wait(), waited)
                    except asyncio.TimeoutError:
                        pass
        finally:
            if self._client is not None:
                await self._client.close()

    async def _step(self) -> float:
        """Do the next thing; answer how long to wait for news (0: go on at once)."""
        if not self.engine.tables_complete(self.agent_id):
            return 0.5  # its queue was just taken over here: restored from the changelog still
        agent = self.engine.directory.get(self.agent_id)
        if agent is None:
            return 1.0  # not (yet) in the registry, or removed: its jobs wait
        current = now()
        if agent.revision != self._revision:
            # Registered, or changed (a new address, credentials, headers): discover at once,
            # whatever backoff an earlier failure set.
            if self._revision is not None and agent.discovered_at is None:
                self._next_discovery, self._discovery_failures = _NEVER, 0
                self._live, self._failing_since = ("closed", False), None
                await self._close_client()
            elif self._revision is None and agent.available and agent.discovered_at is not None:
                # Taken over from another worker (a rebalance, a restart): the registry holds what
                # discovery learnt of this registration; deliver at once and rediscover on schedule,
                # instead of making the agent wait for a discovery (seconds at a slow agent).
                self._next_discovery = agent.discovered_at + timedelta(seconds=self.engine.settings.discovery_interval_s)
            self._revision = agent.revision
        if current >= self._next_discovery:
            await self._discover(agent)
            agent = self.engine.directory.get(self.agent_id) or agent
        queues = [q for q in (self.engine.queue(logic.queue_key(self.agent_id, a))
                              for a in sorted(self.engine.accounts.get(self.agent_id, ()))) if q is not None]
        for queue in queues:
            if queue.account_id not in self._seen_accounts:
                self._seen_accounts.add(queue.account_id)
                if logic.delivered_before(queue):
                    self._to_sweep.add(queue.account_id)
        queued_ids = {b.batch_id for q in queues for b in q.batches}
        self._settled &= queued_ids  # applied DONE entries: their batches left the queue
        ready = [q for q in queues if any(b.batch_id not in self._settled for b in q.batches)]
        if ready and not logic.formats_known(agent):
            # Queued before discovery finished: the jobs wait for it (matched and shaped for the
            # agent's formats then); while discovery fails they show failed, with its error.
            if agent.discovery_error and not self._told_discovery_failed:
                self._told_discovery_failed = True
                await self._mark_waiting_failed(agent, ready)
            return max(0.5, min(5.0, (self._next_discovery - current).total_seconds()))
        if ready:
            if not self.breaker.allows(current):
                return self.breaker.wait_s(current)
            queue = min(ready, key=lambda q: q.batches[0].first_seq)
            batch = next(b for b in queue.batches if b.batch_id not in self._settled)
            if not await self._deliver(agent, queue.account_id, batch):
                return 1.0
            self._settled.add(batch.batch_id)
            return 0
        waits = [1.0]
        for queue in queues:
            if queue.next_seq > queue.open_from and self._flush_requested.get(queue.account_id) != queue.next_seq:
                # A partial batch waits until no job has come for a moment (or, under a steady
                # trickle, for at most ten moments): a burst becomes full batches, not many small ones.
                seen, since, first = self._open_seen.get(queue.account_id, (-1, current, current))
                if seen != queue.next_seq:
                    seen, since = queue.next_seq, current
                self._open_seen[queue.account_id] = (seen, since, first)
                linger = self.engine.settings.sync_flush_after_s
                wait = min(linger - (current - since).total_seconds(), 10 * linger - (current - first).total_seconds())
                if wait > 0:
                    waits.append(wait)
                    continue
                self._flush_requested[queue.account_id] = queue.next_seq
                self._open_seen.pop(queue.account_id, None)
                await self._publish_entry(logic.flush_entry(self.agent_id, queue.account_id, current))
        if self._next_poll == _NEVER:  # the first look (and the sweep) after one polling interval
            self._next_poll = current + self._poll_interval(agent)
        if (self.reviewing or self._to_sweep) and current >= self._next_poll:
            await self._poll(agent)
        return min(waits)

    # -- delivery -------------------------------------------------------------------------------
    def _client_for(self, agent: SalesAgent) -> AgentClient:
        identity = (agent.agent_url, agent.protocol, agent.auth_header, self.engine.directory.credentials.get(self.agent_id))
        # The negotiated version is not part of the identity when the client speaks it already:
        # discovery pins the client it used (AgentClient.pin), and replacing that client once the
        # registry showed the same version opened a third MCP session with every agent (a TLS
        # context, an initialize) before its first delivery.
        if (self._client is None or self._client_of != identity
                or (agent.negotiated_version and self._client.pinned != agent.negotiated_version)):
            self._client = AgentClient(agent, self.engine.directory.secrets(self.agent_id),
                                       timeout_s=self.engine.settings.sync_call_timeout_s)
            self._client_of = identity
        else:
            # The same registration, as the registry last had it: a reconnection (after a failed
            # call) goes to the endpoint discovery found, not the registered base URL.
            self._client.agent = agent
        return self._client

    async def _close_client(self) -> None:
        if self._client is not None:
            client, self._client, self._client_of = self._client, None, None
            await client.close()

    def _version(self, agent: SalesAgent) -> str:
        return agent.negotiated_version or logic.negotiate(SUPPORTED_VERSIONS, agent.adcp_versions) or "3.2"

    def _listed(self, agent: SalesAgent) -> list:
        """The formats the agent listed (parsed once per discovery), unless formats were declared
        at registration: then the buyer's declaration decides what fits."""
        if agent.declared_formats or not agent.discovered_formats_json:
            return []
        if self._formats_of is None or self._formats_of[0] != agent.discovered_formats_json:
            self._formats_of = (agent.discovered_formats_json, listed_formats(json.loads(agent.discovered_formats_json)))
        return self._formats_of[1]

    def _push(self, agent: SalesAgent) -> dict | None:
        """Our webhook for the agent's review decisions, where it declares webhook support."""
        secrets = self.engine.directory.secrets(self.agent_id)
        if not agent.accepts_webhooks or secrets is None or not secrets.webhook_secret:
            return None
        return {"url": self.engine.settings.webhook_base_url + webhook_path(self.agent_id),
                "authentication": {"schemes": ["HMAC-SHA256"], "credentials": secrets.webhook_secret}}

    async def _mark_waiting_failed(self, agent: SalesAgent, queues: list[AgentQueue]) -> None:
        failure = logic.CallFailure(f"{agent.name} cannot be reached yet: {agent.discovery_error}", code="AGENT_UNREACHABLE")
        for queue in queues:
            for queued in queue.batches:
                entries = [e for seq in range(queued.first_seq, queued.last_seq + 1)
                           if (e := self.engine.entry(logic.pending_key(self.agent_id, queue.account_id, seq))) is not None]
                batch = logic.build_batch(queued, self.agent_id, queue.account_id, entries, self._version(agent))
                # attempt 0: no call was made (its result id differs from the first real attempt's)
                await self._publish_results(logic.results_for(batch, attempt=0, now=now(), failure=failure))

    async def _deliver(self, agent: SalesAgent, account_id: str, queued: QueuedBatch) -> bool:
        """Send the batch until it is settled (True); False when its entries are not all here."""
        seqs = range(queued.first_seq, queued.last_seq + 1)
        entries = [entry for seq in seqs
                   if (entry := self.engine.entry(logic.pending_key(self.agent_id, account_id, seq))) is not None]
        if len(entries) != len(seqs):
            # Entries leave the table only with their batch's DONE: a queued batch without all of
            # them is a table still filling, never one to send in part and settle.
            log.warning("sales agent %s: batch %s has %d of its %d entries here; it waits for the rest",
                        self.agent_id, queued.batch_id, len(entries), len(seqs))
            return False
        batch = logic.build_batch(queued, self.agent_id, account_id, entries, self._version(agent), self._listed(agent),
                                  self._push(agent))
        metrics = self.engine.pipeline.metrics
        attempt = 0
        while True:
            attempt += 1
            current = now()
            if not batch.payload["creatives"]:  # nothing this agent can take: settle at once
                await self._settle(batch, logic.results_for(batch, attempt=attempt, now=current, response={}))
                return True
            while not self.breaker.allows(now()):
                await asyncio.sleep(self.breaker.wait_s(now()))
            try:
                response = await self._client_for(agent).call("sync_creatives", batch.payload)
            except CallError as error:
                self.breaker.failed(now())
                await self._tell_outage(agent, error.failure.message)
                metrics.sync_calls.labels("failed").inc()
                metrics.sync_failures.labels(self.agent_id).inc()
                failure = error.failure
                await self._calls_failing(agent, failure.message)
                results = logic.results_for(batch, attempt=attempt, now=now(), failure=failure)
                if not failure.retryable:
                    await self._settle(batch, results)
                    return True
                await self._publish_results(results)
                await asyncio.sleep(logic.retry_delay(attempt, cap_s=self.engine.settings.sync_retry_cap_s,
                                                      jitter=random.random(), retry_after_s=failure.retry_after_s))
                agent = self.engine.directory.get(self.agent_id) or agent
                continue
            self.breaker.succeeded()
            self._outage_since = None
            await self._calls_succeed(agent)
            metrics.sync_calls.labels("ok").inc()
            results = logic.results_for(batch, attempt=attempt, now=now(), response=response)
            for result in results:
                if result.outcome is SyncOutcome.SYNCED and result.approval_status in (None, "pending_review", "processing"):
                    self.reviewing[(result.account_id, result.creative_id)] = result.content_version
                    if _NEVER < self._next_poll < now():  # the first look after a review has had time to happen
                        self._next_poll = now() + self._poll_interval(agent)
            await self._settle(batch, results)
            return True

    async def _calls_failing(self, agent: SalesAgent, message: str) -> None:
        """A failed call: the agent's live state (failing since, circuit) is published and logged
        when it changes, not on every attempt."""
        state = (self.breaker.state(now()), True)
        if state == self._live:
            return
        if not self._live[1]:
            self._failing_since = now()
        log.warning("sales agent %s: calls failing (circuit %s): %s", self.agent_id, state[0], message)
        self._live = state
        current = self.engine.directory.get(self.agent_id) or agent
        await self._publish_agent(current.model_copy(update={"circuit": state[0], "failing_since": self._failing_since,
                                                             "last_error": message, "updated_at": now()}))

    async def _calls_succeed(self, agent: SalesAgent) -> None:
        if self._live == ("closed", False) and agent.last_success_at is not None:
            return
        if self._live[1]:
            log.info("sales agent %s: calls succeed again", self.agent_id)
        self._live, self._failing_since = ("closed", False), None
        current = self.engine.directory.get(self.agent_id) or agent
        await self._publish_agent(current.model_copy(update={"circuit": "closed", "failing_since": None, "last_error": None,
                                                             "last_success_at": now(), "updated_at": now()}))

    async def _tell_outage(self, agent: SalesAgent, message: str) -> None:
        """The circuit opening after a run of failures starts an outage: one notification for it
        (a half-open trial failing again is the same outage, and so is a discovery failing)."""
        if self._outage_since is None and self.breaker.state(now()) == "open":
            self._outage_since = now()
            if agent.account_id:
                await notify.publish(self.engine.pipeline, agent_unavailable(
                    agent.account_id, self.agent_id, agent.name, message, self._outage_since, self._outage_since))

    async def _settle(self, batch: logic.Batch, results: list[SyncResult]) -> None:
        await self._publish_results(results)
        self.engine.pipeline.metrics.deliveries.labels(self.agent_id).inc(
            sum(1 for r in results if r.outcome is SyncOutcome.SYNCED))
        await self._publish_entry(logic.done_entry(self.agent_id, batch.account_id, batch.batch_id, now()))

    async def _publish_results(self, results: list[SyncResult]) -> None:
        pipeline = self.engine.pipeline
        key, value = pipeline.codecs.key("sync_results"), pipeline.codecs.value("sync_results")
        for group_key, group in logic.by_partition(results, self.engine.result_partition):
            await pipeline.publish("sync_results", key.encode(group_key), value.encode(group))

    async def _publish_entry(self, entry: SyncJob) -> None:
        pipeline = self.engine.pipeline
        await pipeline.publish("sync_jobs", pipeline.codecs.key("sync_jobs").encode(entry.sales_agent_id),
                               pipeline.codecs.value("sync_jobs").encode(entry))

    # -- discovery ------------------------------------------------------------------------------
    async def _discover(self, agent: SalesAgent) -> None:
        settings = self.engine.settings
        client = self._client_for(agent)
        try:
            found = await discover(client, SUPPORTED_VERSIONS)
        except CallError as error:
            self._discovery_failures += 1
            retry = min(300.0, 2.0 * 2 ** min(self._discovery_failures, 8))
            self._next_discovery = now() + timedelta(seconds=retry)
            message = error.failure.message
            if self._discovery_failures == 1 or message != agent.discovery_error:  # one line per change, not per attempt
                log.warning("discovery of sales agent %s failed (retrying with backoff): %s", self.agent_id, message)
            updated = agent.model_copy(update={"available": False, "discovery_error": message, "updated_at": now()})
            if (self._discovery_failures == 1 and self._outage_since is None and agent.account_id
                    and (agent.available or agent.discovered_at is None)):
                # Once per outage: an agent that answered before, or one never reached. Its calls
                # failing too is the same outage (_tell_outage), told once.
                self._outage_since = now()
                await notify.publish(self.engine.pipeline, agent_unavailable(
                    agent.account_id, self.agent_id, agent.name, message, agent.updated_at, now()))
        else:
            if self._discovery_failures or agent.discovery_error:
                log.info("sales agent %s discovered after failures", self.agent_id)
            elif agent.discovered_at is None:
                log.info("sales agent %s discovered: AdCP %s, %d formats", self.agent_id, found["negotiated"],
                         len(found["formats"]))
            self._discovery_failures, self._told_discovery_failed = 0, False
            if self.breaker.state(now()) != "open":  # answering again; with calls still failing, the outage goes on
                self._outage_since = None
            self._next_discovery = now() + timedelta(seconds=settings.discovery_interval_s)
            updated = agent.model_copy(update={
                "available": True, "discovery_error": None, "adcp_versions": found["versions"],
                "negotiated_version": found["negotiated"], "version_reason": found["version_reason"],
                "endpoint_url": client.endpoint,
                "accepts_webhooks": logic.accepts_webhooks(found["capabilities"]),
                "discovered_formats_json": json.dumps(found["formats"]), "discovered_at": now(), "updated_at": now(),
                "last_success_at": now()})
        if updated.model_copy(update={"updated_at": agent.updated_at, "discovered_at": agent.discovered_at,
                                      "last_success_at": agent.last_success_at}) != agent or updated.available:
            await self._publish_agent(updated)

    async def _publish_agent(self, agent: SalesAgent) -> None:
        """What this worker learnt of the agent, under the registration it learnt it from: a
        registration changed meanwhile (a newer revision) wins, and this is dropped (the next
        step starts over from the new one)."""
        pipeline = self.engine.pipeline
        current = self.engine.directory.agents.get(self.agent_id)
        if current is not None and (current.revision != agent.revision or current.deleted):
            return
        self.engine.directory.agents.apply(agent)
        await pipeline.topics["sales_agents"].send(key=pipeline.codecs.key("sales_agents").encode(agent.sales_agent_id),
                                                   value=pipeline.codecs.value("sales_agents").encode(agent))

    # -- review polling -------------------------------------------------------------------------
    def _poll_interval(self, agent: SalesAgent) -> timedelta:
        # An agent that pushes its decisions is polled only as a safety net for lost webhooks.
        pushes = agent.accepts_webhooks and agent.has_webhook_secret
        return timedelta(seconds=self.engine.settings.poll_interval_s * (12 if pushes else 1))

    async def _poll(self, agent: SalesAgent) -> None:
        """Ask list_creatives about the creatives under review here (by creative_ids, only what changed
        since the last look, page by page). After a restart the watch list is gone: one sweep of each
        account delivered to before, over its creatives changed at the agent in the last day, finds
        the decisions still to learn."""
        self._next_poll = now() + self._poll_interval(agent)
        started = now()
        since = self._polled_at - timedelta(minutes=1) if self._polled_at else None  # allow for clock skew
        sweeping = sorted(self._to_sweep)
        queries: list[tuple[str, dict]] = [(a, {"updated_after": (started - timedelta(days=1)).isoformat()}) for a in sweeping]
        by_account: dict[str, list[str]] = {}
        for account_id, creative_id in self.reviewing:
            by_account.setdefault(account_id, []).append(creative_id)
        for account_id, creative_ids in by_account.items():
            for first in range(0, len(creative_ids), 100):
                filters: dict = {"creative_ids": creative_ids[first:first + 100]}
                if since:
                    filters["updated_after"] = since.isoformat()
                queries.append((account_id, filters))
        events = []
        for account_id, filters in queries:
            cursor = None
            for _ in range(1000):  # pages; bounded against an agent that never stops paging
                pagination = {"max_results": 100, **({"cursor": cursor} if cursor else {})}
                try:
                    answer = await self._client_for(agent).call("list_creatives", {
                        "account": {"account_id": account_id}, "filters": filters, "pagination": pagination})
                except CallError as error:
                    log.info("polling %s failed: %s", self.agent_id, error.failure.message)
                    return
                asked = set(filters.get("creative_ids") or ())
                for item in answer.get("creatives") or []:
                    # Agents ignore filters (all creatives, every account): pick out ours.
                    if not isinstance(item, dict) or not logic.answers_for(item, account_id, asked):
                        continue
                    status, creative_id = str(item.get("status") or ""), str(item.get("creative_id"))
                    if status in ("approved", "rejected", "suspended", "archived"):
                        self.reviewing.pop((account_id, creative_id), None)
                    if status:
                        source = ApprovalSource.POLL if asked else ApprovalSource.SWEEP
                        events.append(self._approval(account_id, creative_id, status, item, started, source))
                page = answer.get("pagination") or {}
                cursor = page.get("cursor") if page.get("has_more") else None
                if not cursor:
                    break
        self._to_sweep.difference_update(sweeping)
        self._polled_at = started
        pipeline = self.engine.pipeline
        key, value = pipeline.codecs.key("approval_events"), pipeline.codecs.value("approval_events")
        for event in events:
            await pipeline.publish("approval_events", key.encode(f"{event.account_id}/{event.creative_id}"), value.encode(event))

    def _approval(self, account_id: str, creative_id: str, status: str, item: dict, asked_at: datetime,
                  source: ApprovalSource) -> ApprovalEvent:
        updated = item.get("updated_date")
        try:
            agent_time = datetime.fromisoformat(str(updated).replace("Z", "+00:00")) if updated else None
        except ValueError:
            agent_time = None
        reason = item.get("rejection_reason") or (item.get("review") or {}).get("reason") if isinstance(item.get("review"), dict) \
            else item.get("rejection_reason")
        return ApprovalEvent(
            event_id=logic.stable_id("poll", self.agent_id, account_id, creative_id, status, str(updated))[:32],
            sales_agent_id=self.agent_id, account_id=account_id, creative_id=creative_id, status=status,
            rejection_reason=reason, source=source, observed_at=asked_at, agent_updated_at=agent_time)
