"""Prometheus metrics of the gateway, behind an injectable registry."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("creative_sync_gateway_requests_total", "HTTP requests, by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("creative_sync_gateway_request_seconds", "HTTP request latency, by route", ["route"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self.published = Counter("creative_sync_gateway_events_published_total", "Events published, by topic role",
                                 ["topic"], registry=self.registry)
        self.inbound_webhooks = Counter("creative_sync_gateway_agent_webhooks_total",
                                        "Webhooks from sales agents, by outcome (accepted, duplicate, conflict, refused, invalid)",
                                        ["outcome"], registry=self.registry)
        self.owner_reads = Histogram("creative_sync_gateway_owner_read_seconds",
                                     "Reads asked of the worker that owns the data, by read and answer status "
                                     "(200; 421 moved; 503 recovering; 0 unreachable)", ["read", "status"],
                                     registry=self.registry,
                                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        self.routing_refreshes = Counter("creative_sync_gateway_routing_refreshes_total",
                                         "Times the gateway read which worker owns which partition", registry=self.registry)
        self.cache_lookups = Counter("creative_sync_gateway_cache_lookups_total",
                                     "Lookups in the gateway's bounded caches, by cache and result (hit, miss)",
                                     ["cache", "result"], registry=self.registry)
