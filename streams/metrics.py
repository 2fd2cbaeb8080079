"""Prometheus metrics of a worker, behind an injectable registry (one per app: tests stay isolated)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events = Counter(
            "creative_sync_worker_events_total", "Events handled, by processor and outcome",
            ["processor", "outcome"], registry=self.registry)
        self.dead_letters = Counter(
            "creative_sync_worker_dead_letters_total", "Messages sent to the dead-letter topic",
            ["processor", "stage"], registry=self.registry)
        self.rewinds = Counter(
            "creative_sync_worker_rewinds_total", "Partitions fetched again because events went missing in the consumer",
            ["processor"], registry=self.registry)
        self.processing = Histogram(
            "creative_sync_worker_processing_seconds", "Time to handle one event",
            ["processor"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
        self.hop_latency = Histogram(
            "creative_sync_worker_hop_latency_seconds", "From the message's timestamp to its handling",
            ["processor"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.creatives = Counter(
            "creative_sync_library_creatives_total", "Creatives applied by the library, by action",
            ["action"], registry=self.registry)
        self.assigned_partitions = Gauge(
            "creative_sync_worker_assigned_partitions", "Partitions currently assigned to this worker",
            registry=self.registry)
        self.sync_calls = Counter(
            "creative_sync_sync_calls_total", "sync_creatives calls to sales agents, by outcome",
            ["outcome"], registry=self.registry)
        self.deliveries = Counter(
            "creative_sync_sync_deliveries_total", "Creatives a sales agent accepted, by agent",
            ["sales_agent"], registry=self.registry)
        self.status_changes = Counter(
            "creative_sync_status_changes_total", "Per (creative, agent) status rows changed, by cause",
            ["cause"], registry=self.registry)
        self.state_writes = Counter(
            "creative_sync_state_writes_total", "Creatives' sync states written (each a table row and a status record), "
            "by cause: fewer than status rows changed when a take gathers several agents' news", ["cause"],
            registry=self.registry)
        self.notifications = Counter(
            "creative_sync_notifications_total", "Notifications published, by type", ["type"], registry=self.registry)
        self.expired = Counter(
            "creative_sync_expired_rows_total", "Table rows removed by a retention rule, by table", ["table"],
            registry=self.registry)
        # For dashboards and alerts (k8s/monitoring.yaml, the compose file's Grafana):
        self.agent_available = Gauge(
            "creative_sync_sales_agent_available", "1 while the sales agent answers, 0 during an outage (circuit open "
            "or discovery failing), per agent this worker delivers to", ["sales_agent"], registry=self.registry)
        self.sync_failures = Counter(
            "creative_sync_sync_failures_total", "Failed sync_creatives calls, by sales agent", ["sales_agent"],
            registry=self.registry)
        self.consumer_lag = Gauge(
            "creative_sync_worker_consumer_lag", "Records not yet read on this worker's partitions, by topic",
            ["topic"], registry=self.registry)
        self.campaigns = Gauge(
            "creative_sync_campaigns", "Campaigns of this worker's accounts by their last health", ["status"],
            registry=self.registry)
        self.approval_latency = Histogram(
            "creative_sync_approval_latency_seconds", "From a creative's delivery to the sales agent's decision on it",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600), registry=self.registry)
