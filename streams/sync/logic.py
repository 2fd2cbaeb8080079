"""The sync engine's rules, as pure functions: a sales agent's delivery queue, the sync_creatives
payload for its AdCP version, what its answer means per creative, retry delays and the circuit
breaker. No I/O and no clock: `now` and random numbers are passed in.

The queue of one (sales agent, account) is a numbered list of DELIVER entries (up to 100 jobs
each); a batch is a closed range of numbers, at most 100 jobs in all, with its idempotency key. Every change to it comes from one entry of the agent's
partition of sync_jobs (DELIVER, FLUSH, DONE), so a replay after a crash rebuilds the very same
batches under the very same keys: a key is never reused for another batch, and a batch is
never sent under two keys.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streams.library.formats import FORMATS, STANDARD_AGENT_URL
from streams.matching.logic import CreativeTraits, ListedFormat, normalise_agent_url, placement, traits_of
from topics.events import (AdcpError, AgentQueue, SalesAgent, QueuedBatch, QueueEntryKind, SyncItem, SyncJob, SyncOutcome, SyncResult,
                           SyncResultBatch, SyncTrigger)

MAX_BATCH = 100  # AdCP: at most 100 creatives per sync_creatives


def queue_key(agent_id: str, account_id: str) -> str:
    return f"{agent_id}/{account_id}"


def pending_key(agent_id: str, account_id: str, seq: int) -> str:
    return f"{agent_id}/{account_id}/{seq:012d}"


def stable_id(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def job_id_for(trigger: str, account_id: str, creative_id: str, content_version: int, agent_id: str,
               cause: str = "") -> str:
    """Deterministic: the same trigger of the same creative version for the same agent is one job."""
    return stable_id("job", trigger, account_id, creative_id, content_version, agent_id, cause)[:32]


# -- the queue ------------------------------------------------------------------------------------
#: DELIVER entries a queue remembers by id (what a replayed trigger can publish again: the
#: entries of one commit interval).
RECENT_ENTRIES = 256

@dataclass
class QueueChange:
    queue: AgentQueue
    store: dict[int, SyncJob] = field(default_factory=dict)  # seq -> DELIVER entry to keep until delivered
    drop: list[int] = field(default_factory=list)  # seqs delivered: forget them
    closed: list[QueuedBatch] = field(default_factory=list)


def empty_queue(agent_id: str, account_id: str) -> AgentQueue:
    return AgentQueue(sales_agent_id=agent_id, account_id=account_id, next_seq=0, open_from=0)


def _close(queue: AgentQueue, *, partition: int, offset: int, before: bool = False) -> tuple[AgentQueue, QueuedBatch | None]:
    if queue.next_seq <= queue.open_from:
        return queue, None
    # The key is made from the coordinates of the entry that closed the batch (and whether it
    # closed it before or after joining it): a replay closes the same range at the same entry,
    # so it gets the same key; no other batch ever can.
    digest = stable_id("batch", queue.sales_agent_id, queue.account_id, partition, offset, *(["before"] if before else []))
    batch = QueuedBatch(batch_id=digest[:24], idempotency_key=f"cs-{digest[:40]}", first_seq=queue.open_from,
                        last_seq=queue.next_seq - 1)
    return queue.model_copy(update={"open_from": queue.next_seq, "open_items": 0, "batches": [*queue.batches, batch]}), batch


def apply_entry(queue: AgentQueue | None, entry: SyncJob, *, partition: int, offset: int) -> QueueChange | None:
    """The queue after one entry of the agent's partition; None when the entry was applied before.

    A batch is a range of whole DELIVER entries holding at most MAX_BATCH jobs: an entry that
    would overflow the open batch closes it first, and a batch closes as soon as it is full."""
    queue = queue or empty_queue(entry.sales_agent_id, entry.account_id)
    if offset <= queue.last_offset:
        return None  # redelivered after a crash: already in the queue
    if entry.kind is QueueEntryKind.DELIVER and entry.job_id in queue.recent_entries:
        # Published twice: the matcher handles a trigger at least once (a crash after it published
        # the entries and before its offset was committed replays the trigger, and its entries come
        # again with the same ids at new offsets). Queued again, they would go out under a new key.
        return None
    queue = queue.model_copy(update={"last_offset": offset})
    change = QueueChange(queue)
    if entry.kind is QueueEntryKind.DELIVER:
        queue = queue.model_copy(update={"recent_entries": [*queue.recent_entries[-(RECENT_ENTRIES - 1):], entry.job_id]})
        size = len(entry.jobs())
        if queue.open_items and queue.open_items + size > MAX_BATCH:
            queue, closed = _close(queue, partition=partition, offset=offset, before=True)
            change.closed.append(closed)
        seq = queue.next_seq
        change.store[seq] = entry
        queue = queue.model_copy(update={"next_seq": seq + 1, "open_items": queue.open_items + size})
        if queue.open_items >= MAX_BATCH:
            queue, closed = _close(queue, partition=partition, offset=offset)
            change.closed.append(closed)
        change.queue = queue
    elif entry.kind is QueueEntryKind.FLUSH:
        change.queue, closed = _close(queue, partition=partition, offset=offset)
        change.closed += [closed] if closed else []
    elif entry.kind is QueueEntryKind.DONE:
        done = [b for b in queue.batches if b.batch_id == entry.batch_id]
        change.queue = queue.model_copy(update={"batches": [b for b in queue.batches if b.batch_id != entry.batch_id]})
        change.drop = [seq for b in done for seq in range(b.first_seq, b.last_seq + 1)]
    return change


def owed_seq(queue: AgentQueue | None, entry: SyncJob) -> int | None:
    """The number under which the queue stored a DELIVER entry it has applied already, while the
    entry is still owed to the agent (in a queued batch or the open one); None otherwise.

    An entry's two changelog records (the entry itself in sync_pending, then the queue) go to two
    topics, which the producer may send in either order: a crash can leave the queue saying the
    entry was applied while the entry itself was never stored. Its replay, skipped as applied,
    brings it back (the stream stores it again under this number). A DELIVER entry joins
    `recent_entries` and takes `next_seq` at once, so the i-th recent entry is number
    next_seq - len(recent_entries) + i."""
    if queue is None or entry.kind is not QueueEntryKind.DELIVER or entry.job_id not in queue.recent_entries:
        return None
    seq = queue.next_seq - len(queue.recent_entries) + queue.recent_entries.index(entry.job_id)
    owed = queue.open_from <= seq < queue.next_seq or any(b.first_seq <= seq <= b.last_seq for b in queue.batches)
    return seq if owed else None


def delivered_before(queue: AgentQueue) -> bool:
    """Whether some batch of this queue was settled already: by an earlier owner of the agent (a
    restart, a rebalance), whose watch list of creatives under review is gone. A queue whose
    every batch is still here was never delivered from: nothing of it can be under review."""
    return min([b.first_seq for b in queue.batches] + [queue.open_from]) > 0


def deliver_entries(agent_id: str, account_id: str, jobs: Sequence[SyncItem], *, trigger: SyncTrigger, now: datetime,
                    campaign_id: str | None = None, tactic_id: str | None = None) -> list[SyncJob]:
    """The DELIVER entries carrying `jobs` to one agent: one per MAX_BATCH jobs, not one per job
    (a queue entry costs the stream the same whatever it holds)."""
    entries = []
    for first in range(0, len(jobs), MAX_BATCH):
        chunk = list(jobs[first:first + MAX_BATCH])
        entries.append(SyncJob(
            job_id=stable_id("entry", agent_id, [j.job_id for j in chunk])[:32], kind=QueueEntryKind.DELIVER,
            sales_agent_id=agent_id, account_id=account_id, creative_id=chunk[0].creative_id if len(chunk) == 1 else "",
            content_version=chunk[0].content_version if len(chunk) == 1 else 0, trigger=trigger, campaign_id=campaign_id,
            tactic_id=tactic_id, requested_at=now, items=chunk))
    return entries


def flush_entry(agent_id: str, account_id: str, now: datetime) -> SyncJob:
    return SyncJob(job_id=f"flush-{stable_id(agent_id, account_id, now)[:16]}", kind=QueueEntryKind.FLUSH,
                   sales_agent_id=agent_id, account_id=account_id, creative_id="", content_version=0, trigger=SyncTrigger.UNKNOWN,
                   requested_at=now)


def done_entry(agent_id: str, account_id: str, batch_id: str, now: datetime) -> SyncJob:
    return SyncJob(job_id=f"done-{batch_id}", kind=QueueEntryKind.DONE, sales_agent_id=agent_id, account_id=account_id,
                   creative_id="", content_version=0, trigger=SyncTrigger.UNKNOWN, batch_id=batch_id, requested_at=now)


# -- the payload ----------------------------------------------------------------------------------
def negotiate(ours: Sequence[str], theirs: Sequence[str]) -> str | None:
    """The highest AdCP release both sides speak (3.2 > 3.1 > 3.0)."""
    common = {v.rsplit(".", 1)[0] if v.count(".") > 1 else v for v in theirs} & set(ours)
    return max(common, key=lambda v: tuple(int(p) for p in v.split("."))) if common else None


def choose_version(ours: Sequence[str], adcp: Mapping[str, Any]) -> tuple[list[str], str | None, str]:
    """From an agent's `adcp` capabilities: the versions it declares, the one we speak with it,
    and why (shown in list_sales_agents)."""
    supported = [str(v) for v in adcp.get("supported_versions") or []]
    majors = [str(v) for v in adcp.get("major_versions") or []]
    if supported:
        chosen = negotiate(ours, supported)
        if chosen is None:
            return supported, None, f"no AdCP version in common (the agent speaks {', '.join(supported)})"
        return supported, chosen, f"the highest version both speak (the agent lists {', '.join(supported)})"
    if "3" in majors:
        # A minor it does not name may be older than 3.2's format_kind: 3.0's shape (format_id)
        # is what every 3.x agent accepts.
        return ["3.0"], "3.0", ("the agent declares only major version 3 (no supported_versions): AdCP 3.0 payloads "
                                "with format_id, which every 3.x agent accepts")
    if majors:
        return [f"{m}.0" for m in majors], None, f"no AdCP version in common (the agent declares major {', '.join(majors)})"
    return [], "3.0", "the agent declares no AdCP version: AdCP 3.0 payloads with format_id, the most widely accepted"


def accepts_webhooks(capabilities: Mapping[str, Any]) -> bool:
    """Whether an agent says it pushes webhooks (AdCP 3.2 `webhook_signing.supported`)."""
    signing = capabilities.get("webhook_signing")
    return isinstance(signing, Mapping) and signing.get("supported") is True


def formats_known(agent: SalesAgent) -> bool:
    """Whether what an agent takes is known: declared at registration, or discovered."""
    return bool(agent.declared_formats) or agent.discovered_formats_json is not None


def answers_for(item: Mapping[str, Any], account_id: str, asked: set[str]) -> bool:
    """Whether a list_creatives item answers what we asked about (agents ignore filters): one of
    the creatives asked for (any of the account's when none were named), and not of another
    account where the item names its account."""
    account = item.get("account")
    if isinstance(account, Mapping) and account.get("account_id") not in (None, account_id):
        return False
    if isinstance(item.get("account_id"), str) and item["account_id"] != account_id:
        return False
    return not asked or str(item.get("creative_id")) in asked


_LEGACY_FORMAT_OF_KIND = {f.kind: f.format_id for f in reversed(FORMATS)}  # the first format of each kind


def for_version(creative: Mapping[str, Any], version: str,
                listed: Sequence[ListedFormat] = ()) -> tuple[dict[str, Any] | None, str | None]:
    """The creative as an agent of `version` that lists `listed` expects it, or (None, why) when
    it cannot be sent there.

    A format id goes out exactly as the agent lists it (its agent_url with or without the trailing
    slash). AdCP 3.2 names a format by `format_kind`; 3.0/3.1 only know `format_id`, so a kind is
    mapped to one of the agent's listed formats of that kind, size and duration: never to an id
    the agent did not list. An agent that listed nothing (its formats were declared at
    registration) gets the standard format of the kind."""
    creative = dict(creative)
    traits = place = None
    if listed:
        place = _listed_as(creative.get("format_id"), listed)
        if place is None and (version != "3.2" or "format_kind" not in creative):
            traits = traits_of(creative)  # (the costlier way: by kind, size and duration)
            place = placement(traits, listed)
    if place is not None and "format_id" in creative:
        creative["format_id"] = place.as_format_id()
    elif listed and place is None and version == "3.2" and "format_kind" in creative:
        creative.pop("format_id", None)  # its kind says it; an id the agent did not list is never sent
    if version == "3.2" or "format_kind" not in creative:
        if listed and place is None and "format_id" in creative and "format_kind" not in creative:
            return None, _unplaceable(traits)
        return creative, None
    kind = creative.pop("format_kind")
    if "format_id" not in creative:
        if listed:
            if place is None:
                return None, _unplaceable(traits)
            creative["format_id"] = place.as_format_id()
            return creative, None
        format_id = _legacy_format_id(kind, creative)
        if format_id is None:
            return None, f"No AdCP {version} format_id for format kind {kind!r}"
        creative["format_id"] = {"agent_url": STANDARD_AGENT_URL, "id": format_id}
    return creative, None


def _listed_as(format_id: Any, listed: Sequence[ListedFormat]) -> ListedFormat | None:
    """The listed format a creative's format id names, compared on the normalised agent URL."""
    if not isinstance(format_id, Mapping):
        return None
    key = (normalise_agent_url(format_id.get("agent_url", "")), str(format_id.get("id", "")))
    return next((f for f in listed if f.key == key), None)


def _unplaceable(traits: CreativeTraits | None) -> str:
    if traits is None:
        return "The agent lists no format for this creative"
    what = traits.format_kind or (traits.format_id[1] if traits.format_id else "this format")
    size = f" {traits.width}x{traits.height}" if traits.width and traits.height else ""
    return f"The agent lists no {what}{size} format (it is sent only formats it lists)"


def _legacy_format_id(kind: str, creative: Mapping[str, Any]) -> str | None:
    if kind == "image":
        for asset in (creative.get("assets") or {}).values():
            if isinstance(asset, Mapping) and asset.get("width") and asset.get("height"):
                return f"display_{asset['width']}x{asset['height']}"
    return _LEGACY_FORMAT_OF_KIND.get(kind)


class CallCreatives(list):
    """A call's creatives, which `copy.deepcopy` hands back as they are.

    The adcp client deep-copies a request up to three times (version conversion, account
    continuity) so as never to change the caller's data: for 100 creatives that was ~12 % of a
    worker's CPU. These creatives are built for the agent's own AdCP version (`for_version`), so
    the client converts nothing in them and only the small envelope around them is copied.
    """

    def __deepcopy__(self, memo: dict) -> "CallCreatives":
        return self


@dataclass(frozen=True)
class Batch:
    """What one sync_creatives call carries, and the jobs it settles."""

    batch_id: str
    idempotency_key: str
    sales_agent_id: str
    account_id: str
    payload: dict[str, Any]
    jobs: dict[str, list[SyncItem]]  # creative id -> the jobs its delivery settles
    unsendable: dict[str, str]  # creative id -> why it cannot be sent to this agent


def build_batch(batch: QueuedBatch, agent_id: str, account_id: str, entries: Sequence[SyncJob], version: str,
                listed: Sequence[ListedFormat] = (), push: Mapping[str, Any] | None = None) -> Batch:
    """The call for a queued batch: one entry per creative (its latest version), in the agent's
    dialect and formats (`listed`), with our webhook (`push`) where the agent pushes decisions."""
    latest: dict[str, SyncItem] = {}
    settles: dict[str, list[SyncItem]] = {}
    for job in (job for entry in entries for job in entry.jobs()):
        settles.setdefault(job.creative_id, []).append(job)
        if job.creative_id not in latest or job.content_version >= latest[job.creative_id].content_version:
            latest[job.creative_id] = job
    creatives, unsendable = CallCreatives(), {}
    for creative_id, job in latest.items():
        creative, why = for_version(json.loads(job.creative_json or "{}"), version, listed)
        if creative is None:
            unsendable[creative_id] = why or "unsendable"
        else:
            creatives.append(creative)
    payload = {"adcp_version": version, "account": {"account_id": account_id}, "idempotency_key": batch.idempotency_key,
               "creatives": creatives, "validation_mode": "lenient"}
    if push:
        payload["push_notification_config"] = dict(push)
    return Batch(batch.batch_id, batch.idempotency_key, agent_id, account_id, payload, settles, unsendable)


# -- the answer -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallFailure:
    """A call that did not produce a per-creative answer."""

    message: str
    recovery: str = "transient"  # transient | correctable | terminal
    retry_after_s: float | None = None
    code: str = "AGENT_ERROR"

    @property
    def retryable(self) -> bool:
        return self.recovery == "transient"


def failure_from_errors(errors: Sequence[Mapping[str, Any]], default: str = "transient") -> CallFailure:
    first = errors[0] if errors else {}
    retry_after = first.get("retry_after")
    return CallFailure(str(first.get("message") or "the agent refused the request"),
                       str(first.get("recovery") or default), float(retry_after) if retry_after is not None else None,
                       str(first.get("code") or "AGENT_ERROR"))


def results_for(batch: Batch, *, attempt: int, now: datetime, response: Mapping[str, Any] | None = None,
                failure: CallFailure | None = None) -> list[SyncResult]:
    """One result per job of `batch`: from the agent's per-creative answer, or the call's failure."""
    answers = {str(c.get("creative_id")): c for c in (response or {}).get("creatives") or [] if isinstance(c, Mapping)}
    results = []
    for creative_id, jobs in batch.jobs.items():
        answer = answers.get(creative_id)
        errors: list[AdcpError] = []
        action = platform_id = approval = reason = None
        if creative_id in batch.unsendable:
            outcome, reason = SyncOutcome.SKIPPED, batch.unsendable[creative_id]
        elif failure is not None:
            outcome, reason = SyncOutcome.FAILED, failure.message
            errors = [AdcpError(code=failure.code, message=failure.message, recovery=failure.recovery)]
        elif answer is None:
            outcome, reason = SyncOutcome.FAILED, "The agent's answer did not mention this creative"
        else:
            action = str(answer.get("action") or "")
            errors = [AdcpError(code=str(e.get("code") or "ERROR"), message=str(e.get("message") or ""),
                                field=e.get("field"), recovery=e.get("recovery"))
                      for e in answer.get("errors") or [] if isinstance(e, Mapping)]
            outcome = SyncOutcome.SYNCED
            if action == "failed" and attempt > 1 and already_there(errors):
                # An agent that drops idempotency keys took our earlier attempt of this very batch
                # (its answer was lost) and now refuses the creative as a duplicate: it has it.
                action, errors = "updated", []
            elif action == "failed":
                outcome, reason = SyncOutcome.FAILED, errors[0].message if errors else "The agent refused this creative"
            if outcome is SyncOutcome.SYNCED:
                platform_id = answer.get("platform_id") or answer.get("platform_creative_id")
                approval = answer.get("status") or answer.get("review_status")
                warnings = [str(w) for w in answer.get("warnings") or []]
                # AdCP 3.2's sync answer has no rejection reason field: sellers put it in warnings.
                reason = answer.get("rejection_reason") or (warnings[0] if approval == "rejected" and warnings else None)
        for job in jobs:
            results.append(SyncResult(
                result_id=stable_id("result", job.job_id, batch.batch_id, attempt)[:32], job_id=job.job_id,
                sales_agent_id=batch.sales_agent_id, account_id=batch.account_id, creative_id=creative_id,
                content_version=job.content_version, outcome=outcome, batch_id=batch.batch_id,
                idempotency_key=batch.idempotency_key, attempt=attempt, action=action or None,
                platform_creative_id=str(platform_id) if platform_id else None,
                approval_status=str(approval) if approval else None, reason=reason, errors=errors, occurred_at=now))
    return results


_DUPLICATE_CODES = frozenset({"ALREADY_EXISTS", "CREATIVE_ALREADY_EXISTS", "DUPLICATE", "DUPLICATE_CREATIVE", "CREATIVE_EXISTS"})


def already_there(errors: Sequence[AdcpError]) -> bool:
    """Whether an agent's refusal of a creative says it already has it."""
    return bool(errors) and all(e.code.upper() in _DUPLICATE_CODES or "already exist" in e.message.lower() for e in errors)


def by_partition(results: Sequence[SyncResult], partition_of: Callable[[str], int]) -> list[tuple[str, SyncResultBatch]]:
    """Results grouped by the partition of their account_id/creative_id, each group keyed by its
    first result's key (which the default partitioner sends to that very partition): one record
    per partition instead of one per result, still read where each creative is kept."""
    groups: dict[int, list[SyncResult]] = {}
    for result in results:
        groups.setdefault(partition_of(result_key(result)), []).append(result)
    return [(result_key(group[0]), SyncResultBatch(results=group)) for group in groups.values()]


def result_key(result: SyncResult) -> str:
    return f"{result.account_id}/{result.creative_id}"


# -- retries and the circuit breaker --------------------------------------------------------------
def retry_delay(attempt: int, *, base_s: float = 0.5, cap_s: float = 10.0, jitter: float = 0.5,
                retry_after_s: float | None = None) -> float:
    """Exponential backoff with full jitter (`jitter` in [0, 1), drawn by the caller), never
    sooner than the agent's retry_after."""
    delay = min(cap_s, base_s * (2 ** max(0, attempt - 1))) * (0.5 + jitter / 2)
    return max(delay, retry_after_s or 0.0)


@dataclass
class CircuitBreaker:
    """Per agent: after `threshold` failed calls in a row, no calls for `cool_down`; then one
    trial call (half-open) decides whether it closes again."""

    threshold: int = 5
    cool_down: timedelta = timedelta(seconds=15)
    failures: int = 0
    opened_at: datetime | None = None

    def state(self, now: datetime) -> str:
        if self.opened_at is None:
            return "closed"
        return "open" if now - self.opened_at < self.cool_down else "half_open"

    def allows(self, now: datetime) -> bool:
        return self.state(now) != "open"

    def wait_s(self, now: datetime) -> float:
        return max(0.0, (self.opened_at + self.cool_down - now).total_seconds()) if self.opened_at else 0.0

    def succeeded(self) -> None:
        self.failures, self.opened_at = 0, None

    def failed(self, now: datetime) -> None:
        self.failures += 1
        if self.failures >= self.threshold or self.state(now) == "half_open":
            self.opened_at = now
