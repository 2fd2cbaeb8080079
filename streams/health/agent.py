"""The health processor: every campaign's sync health, computed live, and the campaign
notifications its transitions are worth.

Reads: the campaign entities of this worker's accounts (streams.campaigns, which tells what
changed); the sync status of a campaign's creatives, asked of the workers that own them
(streams/status/reads.py: they live in the creatives' partitions, not the account's), when one of
them changes (the status topic's keys, streams.app.Pipeline.status_changes) and on a heartbeat.
Writes, on the account's partition: the campaign_health table (the health last published, so a
restart neither forgets nor repeats a transition), the campaign_activity table (when each tactic
was last active and synced: the matcher's 30-day auto-detection reads it), campaign_health (on
every change and on a heartbeat), notifications.

The window: failures count per (creative, agent) pair whose latest outcome, within the last
`health_window_s` (a hopping window advancing every evaluation), failed (streams.health.logic).
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from streams.health import logic
from streams.notify import agent as notify
from streams.notify.logic import campaign_notifications
from streams.owner_client import OwnersUnavailable
from streams.runtime import stored_row, tables_restoring
from streams.status import reads as status_reads
from topics.catalogue import HEARTBEAT_HEADER
from topics.events import CampaignActivity, CampaignEntity, CampaignHealth, EntityType, HealthStatus, SyncStatus
from topics.ids import account_in

_NOT_RUNNING = ("completed", "archived")  # campaigns that will not run again: no notifications
log = logging.getLogger(__name__)


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    app = pipeline.app
    monitor = HealthMonitor(pipeline)
    pipeline.health_monitor = monitor

    @app.timer(1.0)
    async def evaluate() -> None:
        if not tables_restoring(app):  # a campaign half restored would show a health it does not have
            await monitor.evaluate(datetime.now(UTC))


class HealthMonitor:
    def __init__(self, pipeline) -> None:  # noqa: ANN001
        self.pipeline, settings = pipeline, pipeline.settings
        self.campaigns = pipeline.campaigns
        self.table, self.activity = pipeline.tables["campaign_health"], pipeline.tables["campaign_activity"]
        self.partition_of = pipeline.codecs.partition_of("campaigns")
        self.rules = logic.HealthRules(window=timedelta(seconds=settings.health_window_s),
                                       critical_failure_rate=settings.health_critical_failure_rate,
                                       review_overdue_after=timedelta(seconds=settings.health_review_overdue_s))
        self.heartbeat_s = settings.health_heartbeat_s
        self.dirty: set[str] = set()
        self._next_heartbeat = 0.0
        #: campaign -> (its account's partition, its last health status): the campaigns gauge
        self.statuses: dict[str, tuple[int, HealthStatus]] = {}

    # -- what changed ---------------------------------------------------------------------------
    def entity_changed(self, entity: CampaignEntity) -> None:
        if entity.entity_type is EntityType.BRAND_AGENT:
            return
        self.dirty.add(str(entity.campaign_id))

    def creative_changed(self, account_id: str, creative_id: str) -> None:
        """A creative's status changed (any partition's): its campaigns, if its account is kept here."""
        if self.partition_of(account_id) in self._owned_partitions():
            self.dirty.update(self.campaigns.campaigns_of(account_id, creative_id))

    def _owned_partitions(self) -> set[int]:
        name = self.pipeline.topics["campaigns"].get_topic_name()
        return {tp.partition for tp in self.pipeline.app.consumer.assignment() if tp.topic == name}

    # -- evaluation -----------------------------------------------------------------------------
    async def evaluate(self, now: datetime) -> None:
        owned = self._owned_partitions()
        if not owned:
            self._count(owned)
            return
        heartbeat = time.monotonic() >= self._next_heartbeat
        if heartbeat:  # every campaign kept here is evaluated: the gauge's campaigns are those
            self._next_heartbeat = time.monotonic() + self.heartbeat_s
            self.statuses = {}
            targets = {c.entity_id for partition in owned for account_id in self.campaigns.accounts(partition)
                       for c in self.campaigns.of_account(EntityType.CAMPAIGN.value, account_id)}
        else:
            targets, self.dirty = self.dirty, set()
        ordered = sorted(targets)
        for n, campaign_id in enumerate(ordered):
            if self.partition_of(account_in(campaign_id) or "") not in owned:
                continue
            campaign = self.campaigns.get(EntityType.CAMPAIGN.value, campaign_id)
            if campaign is None:
                continue
            try:
                await self._evaluate(campaign, now, heartbeat)
            except OwnersUnavailable as unavailable:  # a rebalance: this and the rest on a later evaluation
                log.info("campaign health waits for the status owners: %s", unavailable)
                self.dirty.update(ordered[n:])
                break
            except Exception:  # one campaign's trouble must not stop the others' health
                log.exception("health of campaign %s failed", campaign_id)
        self._count(owned)

    def _count(self, owned: set[int]) -> None:
        """The campaigns gauge: how many of the campaigns kept here are in each health status."""
        counts = Counter(status for partition, status in self.statuses.values() if partition in owned)
        for status in HealthStatus:
            self.pipeline.metrics.campaigns.labels(status.value.lower()).set(counts.get(status, 0))

    async def rows_of(self, campaign: CampaignEntity) -> dict[str, list[SyncStatus]]:
        """The status rows of the campaign's creatives, from the workers that own them."""
        return await status_reads.rows_of(self.pipeline.owners, campaign.account_id, self.campaigns.assigned(campaign.entity_id))

    def health_of(self, campaign: CampaignEntity, creatives: dict[str, list[SyncStatus]], now: datetime
                  ) -> tuple[CampaignHealth, logic.Health]:
        tactics = [_tactic(t) for t in self.campaigns.tactics(campaign.entity_id)]
        recent = logic.RecentOutcomes()
        for creative_id, rows in creatives.items():
            for row in rows:
                if row.last_sync_at is not None:
                    recent = recent.add(creative_id, row.sales_agent_id, row.last_sync_at,
                                        failed=row.sync_status.value == "FAILED")
        names = {a.sales_agent_id: a.name for a in self.pipeline.directory.active()}
        health = logic.campaign_health(tactics, creatives, recent, now, self.rules, names)
        record = CampaignHealth(
            campaign_id=campaign.entity_id, account_id=campaign.account_id, brand_agent_id=campaign.brand_agent_id,
            campaign_name=campaign.name, status=health.status, synced_tactics=health.synced_tactics,
            total_tactics=health.total_tactics, approved_creatives=health.approved_creatives,
            total_creatives=health.total_creatives, failures_in_window=health.failures_in_window,
            last_sync_issue=health.last_sync_issue, reasons=health.reasons,
            missing_tactics=[h.tactic.name for h in health.tactics if h.missing_creatives],
            window_start=now - self.rules.window, window_end=now, computed_at=now)
        return record, health

    async def _record_activity(self, campaign: CampaignEntity, creatives: dict[str, list[SyncStatus]], now: datetime) -> None:
        entities = self.campaigns.tactics(campaign.entity_id)
        tactics = [_tactic(t) for t in entities]
        last_synced: dict[str, datetime] = {}
        for rows in creatives.values():
            for row in rows:
                if row.last_sync_at is not None and row.sync_status.value == "SYNCED":
                    last_synced[row.sales_agent_id] = max(last_synced.get(row.sales_agent_id, row.last_sync_at), row.last_sync_at)
        previous: CampaignActivity | None = stored_row(self.activity, campaign.entity_id)
        record = CampaignActivity(campaign_id=campaign.entity_id, account_id=campaign.account_id,
                                  brand_agent_id=campaign.brand_agent_id, tactics=logic.tactic_activity(
                                      tactics, {t.entity_id: t.created_at for t in entities}, campaign.status == "active",
                                      previous.tactics if previous else [], last_synced, now))
        if record != previous:
            await self.pipeline.write_rows("campaign_activity", [(campaign.entity_id, record)],
                                           partition=self.partition_of(campaign.account_id))

    async def _evaluate(self, campaign: CampaignEntity, now: datetime, heartbeat: bool) -> None:
        creatives = await self.rows_of(campaign)
        await self._record_activity(campaign, creatives, now)
        record, _ = self.health_of(campaign, creatives, now)
        self.statuses[campaign.entity_id] = (self.partition_of(campaign.account_id), record.status)
        previous: CampaignHealth | None = stored_row(self.table, campaign.entity_id)
        changed = previous is None or _essence(previous) != _essence(record)
        if not changed and not heartbeat:
            return
        pipeline, codecs = self.pipeline, self.pipeline.codecs
        if changed and campaign.status not in _NOT_RUNNING:
            for note in campaign_notifications(campaign.account_id, campaign.entity_id, campaign.brand_agent_id,
                                               str(campaign.name), previous, record, since=previous.computed_at if previous else None,
                                               now=now):
                await notify.publish(pipeline, note)
        # A heartbeat's record (nothing changed) says so in a header: a live view need not read again.
        await pipeline.topics["campaign_health"].send(key=codecs.key("campaign_health").encode(campaign.entity_id),
                                                      value=codecs.value("campaign_health").encode(record),
                                                      headers=None if changed else {HEARTBEAT_HEADER: b"1"})
        # after the notifications: a crash in between repeats them under the same ids
        await pipeline.write_rows("campaign_health", [(campaign.entity_id, record)],
                                  partition=self.partition_of(campaign.account_id))


def _tactic(entity: CampaignEntity) -> logic.Tactic:
    return logic.Tactic(entity.entity_id, str(entity.name or entity.entity_id), str(entity.sales_agent_id),
                        str(entity.status or "active"))


def _essence(health: CampaignHealth) -> str:
    """What makes a change worth publishing (not the times of the window)."""
    return json.dumps(health.model_dump(mode="json", exclude={"window_start", "window_end", "computed_at"}), sort_keys=True)
