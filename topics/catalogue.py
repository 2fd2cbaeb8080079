"""The topic catalogue: every topic of creative-sync with its partitions, key, cleanup policy and
Avro key/value schemas, plus the faust tables whose changelog topics are also permanent API.

Names here are permanent: renaming one is a migration, not a refactor. Deployments may prefix
every name (settings.topic_prefix) to share a cluster; tests use a unique prefix per test.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiokafka.partitioner import murmur2

from topics.codec import AvroCodec, ModelCodec
from topics.events import MODELS
from topics.registry import SchemaRegistryClient

Cleanup = Literal["delete", "compact"]
KEY_SCHEMA = "string_key"
DAY_MS = 24 * 3600 * 1000
#: The largest record any topic carries: a whole sync_creatives request (the gateway takes bodies of
#: up to 4 MiB) travels as one library command, and one creative of it as one creative-changed event.
#: Kafka's default (1 MiB) is raised to this on every topic (`max.message.bytes`) and for every
#: producer (`max_request_size`), with room for the Avro envelope.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: A header on a campaign-health record published on the heartbeat, unchanged: readers that want changes skip it.
HEARTBEAT_HEADER = "creative-sync-heartbeat"


@dataclass(frozen=True)
class TopicSpec:
    role: str  # how code refers to it
    name: str  # the topic's permanent name (before any prefix)
    partitions: int
    key: str  # what the key is
    value_schema: str  # avro/<value_schema>.avsc
    cleanup: Cleanup
    doc: str
    retention_ms: int | None = None
    key_schema: str = KEY_SCHEMA
    prefixed: bool = True  # changelogs are named by faust after the app id, without the prefix

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}" if self.prefixed else self.name

    def config(self) -> dict[str, str]:
        config = {"cleanup.policy": self.cleanup, "max.message.bytes": str(MAX_MESSAGE_BYTES)}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config


@dataclass(frozen=True)
class TableSpec:
    name: str  # faust table name; its changelog is "<app_id>-<name>-changelog"
    source: str  # role of the topic whose partitions it follows (co-partitioned)
    key: str
    value_schema: str
    doc: str
    key_schema: str = KEY_SCHEMA
    indexed: bool = False  # its store also keeps rows derived from its rows: ordered keys, counts (streams.stores)

    def changelog_name(self, app_id: str) -> str:
        return f"{app_id}-{self.name}-changelog"


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("library_commands", "creative-sync.library.commands", 8, "account_id", "library_command", "delete",
              "Validated creative-library requests from the gateway and upstream systems.", 7 * DAY_MS),
    TopicSpec("creative_state", "creative-sync.library.creatives", 8, "account_id/creative_id", "creative_changed", "compact",
              "Every creative change (content or metadata); the latest per key is the creative."),
    TopicSpec("content_changes", "creative-sync.library.content-changes", 8, "account_id/creative_id", "creative_changed",
              "delete", "The content changes among those (assets, format): the only ones that re-sync a creative. "
              "Co-partitioned with the sync results.", 7 * DAY_MS),
    TopicSpec("sync_triggers", "creative-sync.matching.triggers", 8, "account_id", "sync_trigger", "delete",
              "Requests to sync creatives to sales agents (manual, assignment, new tactic), for the matcher; "
              "co-partitioned with the library commands. Upstream systems may produce onto it; the answer is "
              "on the task results topic under trigger_id.", 7 * DAY_MS),
    TopicSpec("sync_jobs", "creative-sync.sync.jobs", 8, "sales_agent_id", "sync_job", "delete",
              "Delivery queues, one owner per sales agent: DELIVER entries of up to 100 creatives, FLUSH, DONE.",
              7 * DAY_MS),
    TopicSpec("sync_results", "creative-sync.sync.result-batches", 8, "account_id/creative_id (of the first result)",
              "sync_result_batch", "delete",
              "Outcomes of deliveries: syncing, synced, failed, skipped (with reasons), grouped by the partition of "
              "each result's account_id/creative_id.", 7 * DAY_MS),
    TopicSpec("approval_events", "creative-sync.approvals.events", 8, "account_id/creative_id", "approval_event", "delete",
              "Sales agents' review decisions from webhooks, polling and sync responses.", 7 * DAY_MS),
    TopicSpec("sync_status", "creative-sync.approvals.creative-status", 8, "account_id/creative_id", "creative_sync_state",
              "compact", "Current sync and approval status of each creative: one row per sales agent."),
    TopicSpec("sales_agents", "creative-sync.registry.sales-agents", 4, "sales_agent_id", "sales_agent", "compact",
              "The sales-agent registry and what discovery learnt (no secrets)."),
    TopicSpec("sales_agent_credentials", "creative-sync.registry.credentials", 4, "sales_agent_id", "sales_agent_credentials",
              "compact", "Sales agents' secrets, encrypted with the deployment's secrets key (never in plain text)."),
    TopicSpec("campaigns", "creative-sync.campaigns.entities", 8,
              "campaign_id/ENTITY_TYPE/entity_id (brand agents: brand_agent_id/BRAND_AGENT/brand_agent_id), on the "
              "partition of account_id (co-partitioned with the library commands and the sync triggers)",
              "campaign_entity", "compact", "Brand agents, campaigns, tactics and creative assignments."),
    TopicSpec("campaign_health", "creative-sync.campaigns.health", 8, "campaign_id", "campaign_health", "compact",
              "Live campaign health, on change and on a heartbeat. For dashboards."),
    TopicSpec("notifications", "creative-sync.notifications", 4, "account_id", "notification", "delete",
              "Actionable notifications, one per logical event. For dashboards and alerting.", 30 * DAY_MS),
    TopicSpec("notification_state", "creative-sync.notifications.state", 4, "notification_id", "notification_state",
              "compact", "Read and acknowledged flags of notifications as people set them through the API (written by "
              "the worker that owns the account's notifications). For dashboards."),
    TopicSpec("notification_commands", "creative-sync.notifications.commands", 4, "account_id", "notification_command",
              "delete", "Mark read, acknowledge, mark all read: for the worker that owns the account's notifications "
              "(co-partitioned with them); the answer is on the task results topic under command_id.", 7 * DAY_MS),
    TopicSpec("task_results", "creative-sync.tasks.results", 8, "task_id", "task_result", "delete",
              "Final answers of asynchronous AdCP tasks, for get_task_status and task webhooks.", 7 * DAY_MS),
    TopicSpec("principals", "creative-sync.auth.principals", 1, "principal_id", "principal_record", "compact",
              "API principals: the SHA-256 of each bearer token (never the token), the accounts it may act for, and "
              "its revocation. Written by `creative-sync principals add|revoke`; every gateway reads it."),
    TopicSpec("dead_letters", "creative-sync.dead-letters", 1, "source topic", "dead_letter", "delete",
              "Messages that could not be decoded or processed, with raw bytes and coordinates.", 30 * DAY_MS),
)

TABLES: tuple[TableSpec, ...] = (
    TableSpec("creatives", "library_commands", "account_id/creative_id", "stored_creative",
              "The creative library: one row per creative, applied idempotently per command. Its store also keeps "
              "the per-account ordered keys and counts derived from the rows (streams.library.store), so that a "
              "page of list_creatives reads a range of keys, not the library.", indexed=True),
    TableSpec("idempotency", "library_commands", "account_id/idempotency_key", "idempotency_record",
              "Per account and idempotency key, the first answer: replays and conflicts are decided here. Its store "
              "keeps each account's keys in recording order; a key is forgotten after its replay window (24 h).",
              indexed=True),
    TableSpec("sync_queues", "sync_jobs", "sales_agent_id/account_id", "agent_queue",
              "Per sales agent and account: numbered jobs, and the batches (ranges, idempotency keys) to deliver."),
    TableSpec("sync_pending", "sync_jobs", "sales_agent_id/account_id/seq", "sync_job",
              "The jobs of the queues above until their batch is delivered."),
    TableSpec("sync_state", "sync_results", "account_id/creative_id", "creative_sync_state",
              "Per creative, its current content version and its status with every sales agent."),
    TableSpec("archived_creatives", "sync_results", "account_id/creative_id", "archived_creative",
              "The creatives with status rows that the library archived, and when; its store keeps each account's "
              "in archiving order, so that the owner drops the status rows of those archived longer than the status "
              "retention by reading only them (streams.status.store).", indexed=True),
    TableSpec("notifications", "notifications", "account_id/notification_id", "stored_notification",
              "Per account, its notifications (first seen) with their read and acknowledged flags; its store also keeps "
              "them newest first and the account's unread counts (streams.notify.store), so that a page costs a page. "
              "Rows older than the notifications topic's retention are removed.", indexed=True),
    TableSpec("campaign_entities", "campaigns", "account_id\x1fENTITY_TYPE\x1fentity_id", "campaign_entity",
              "Per account, its live brand agents, campaigns, tactics and creative assignments; its store also keeps "
              "the account's ordered keys (by kind, a campaign's tactics and creatives, a creative's campaigns) and "
              "counts (streams.campaigns.store).", indexed=True),
    TableSpec("campaign_health", "campaigns", "campaign_id", "campaign_health",
              "Per campaign (on its account's partition), the health last published (transitions and their "
              "notifications are decided against it)."),
    TableSpec("campaign_activity", "campaigns", "campaign_id", "campaign_activity",
              "Per campaign (on its account's partition), when each tactic was last active and last synced (the "
              "matcher's 30-day auto-detection reads it)."),
)

BY_ROLE: dict[str, TopicSpec] = {t.role: t for t in TOPICS}


def topic(role: str) -> TopicSpec:
    return BY_ROLE[role]


BY_TABLE: dict[str, TableSpec] = {t.name: t for t in TABLES}


def table(name: str) -> TableSpec:
    return BY_TABLE[name]


def table_partitions(table: TableSpec) -> int:
    return BY_ROLE[table.source].partitions


def changelog_specs(app_id: str) -> list[TopicSpec]:
    """The tables' changelog topics as topic specs (compacted, partitioned like their source)."""
    return [
        TopicSpec(f"changelog:{t.name}", t.changelog_name(app_id), table_partitions(t), t.key, t.value_schema,
                  "compact", f"Changelog of table {t.name}: {t.doc}", prefixed=False)
        for t in TABLES
    ]


def all_specs(app_id: str) -> list[TopicSpec]:
    return [*TOPICS, *changelog_specs(app_id)]


class Codecs:
    """The key and value codecs of every topic, built once per process."""

    def __init__(self, registry: SchemaRegistryClient | None = None, prefix: str = "") -> None:
        self.registry = registry
        self.prefix = prefix
        self._cache: dict[tuple[str, str], AvroCodec] = {}
        self._partitioners: dict[str, Callable[[str], int]] = {}

    def value(self, role: str) -> ModelCodec:
        spec = BY_ROLE[role]
        return self.schema(spec.value_schema, f"{spec.full_name(self.prefix)}-value")

    def key(self, role: str) -> AvroCodec:
        spec = BY_ROLE[role]
        return self.key_codec(spec.key_schema, f"{spec.full_name(self.prefix)}-key")

    def partition_of(self, role: str) -> Callable[[str], int]:
        """The partition a key of `role`'s topic lands on: what the default partitioner (murmur2 of
        the encoded key, as in the Java client) computes, which every producer here uses."""
        found = self._partitioners.get(role)
        if found is not None:
            return found
        codec, partitions = self.key(role), BY_ROLE[role].partitions

        # Remembered, one function per role and process: aiokafka's murmur2 is pure Python, and a
        # creative's key is asked for once per agent it is delivered to (~3 % of a worker
        # delivering to ten agents).
        @functools.lru_cache(maxsize=65_536)
        def partition(key: str) -> int:
            return (murmur2(codec.encode(key)) & 0x7FFFFFFF) % partitions
        self._partitioners[role] = partition
        return partition

    def key_codec(self, schema_name: str, subject: str) -> AvroCodec:
        return self._cached(schema_name, subject, lambda: AvroCodec(schema_name, registry=self.registry, subject=subject))

    def schema(self, schema_name: str, subject: str | None = None) -> ModelCodec:
        subject = subject or schema_name
        codec = self._cached(
            schema_name, subject, lambda: ModelCodec(schema_name, MODELS[schema_name], registry=self.registry, subject=subject)
        )
        assert isinstance(codec, ModelCodec)
        return codec

    def _cached(self, schema_name: str, subject: str, build) -> AvroCodec:
        key = (schema_name, subject)
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]
