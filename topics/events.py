"""Typed event models, one per Avro schema in avro/ (tests/unit/test_contract.py keeps them in step).

Field order, names and optionality follow the .avsc files; Avro enums are StrEnums.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- library ----------------------------------------------------------------------------------
class LibraryOperation(StrEnum):
    SYNC_CREATIVES = "SYNC_CREATIVES"
    UNKNOWN = "UNKNOWN"


class LibraryCommand(Event):
    command_id: str
    account_id: str
    principal_id: str
    operation: LibraryOperation
    idempotency_key: str | None = None
    request_json: str
    received_at: datetime
    schema_checked: bool = False


class ChangeKind(StrEnum):
    CREATED = "CREATED"
    CONTENT = "CONTENT"
    METADATA = "METADATA"
    ARCHIVED = "ARCHIVED"
    UNKNOWN = "UNKNOWN"


class CreativeChanged(Event):
    event_id: str
    account_id: str
    creative_id: str
    change: ChangeKind
    changed_fields: list[str] = Field(default_factory=list)
    content_version: int
    content_hash: str
    name: str | None = None
    format_id: str | None = None
    format_kind: str | None = None
    status: str = "processing"
    tags: list[str] = Field(default_factory=list)
    assigned_to: list[str] = Field(default_factory=list)
    assigned_at: dict[str, datetime] = Field(default_factory=dict)
    creative_json: str
    command_id: str
    created_at: datetime
    updated_at: datetime


class RecentChange(Event):
    command_id: str
    source_offset: int
    change: str
    changed_fields: list[str]
    content_version: int
    content_hash: str
    creative_json: str
    status: str
    updated_at: datetime


class StoredCreative(Event):
    account_id: str
    creative_id: str
    content_version: int
    content_hash: str
    metadata_hash: str
    creative_json: str
    status: str = "processing"
    created_at: datetime
    updated_at: datetime
    last_command_id: str
    last_change: str = "UNKNOWN"
    last_changed_fields: list[str] = Field(default_factory=list)
    last_source_offset: int = -1
    recent_changes: list[RecentChange] = Field(default_factory=list)
    assigned_to: list[str] = Field(default_factory=list)
    assigned_at: dict[str, datetime] = Field(default_factory=dict)


# -- sync -------------------------------------------------------------------------------------
class SyncTrigger(StrEnum):
    CONTENT_CHANGE = "CONTENT_CHANGE"
    MANUAL = "MANUAL"
    CAMPAIGN_ASSIGNMENT = "CAMPAIGN_ASSIGNMENT"
    NEW_TACTIC = "NEW_TACTIC"
    UNKNOWN = "UNKNOWN"


class QueueEntryKind(StrEnum):
    DELIVER = "DELIVER"
    FLUSH = "FLUSH"
    DONE = "DONE"
    UNKNOWN = "UNKNOWN"


class SyncItem(Event):
    """One job of a DELIVER entry: a creative version for the entry's agent."""

    job_id: str
    creative_id: str
    content_version: int
    creative_json: str


class SyncJob(Event):
    job_id: str
    kind: QueueEntryKind = QueueEntryKind.DELIVER
    sales_agent_id: str
    account_id: str
    creative_id: str
    content_version: int
    trigger: SyncTrigger
    campaign_id: str | None = None
    tactic_id: str | None = None
    requested_at: datetime
    creative_json: str | None = None
    batch_id: str | None = None
    items: list[SyncItem] = Field(default_factory=list)

    def jobs(self) -> list[SyncItem]:
        """A DELIVER entry's jobs (an entry without items is one job, from its own fields)."""
        if self.items or self.kind is not QueueEntryKind.DELIVER:
            return list(self.items)
        return [SyncItem(job_id=self.job_id, creative_id=self.creative_id, content_version=self.content_version,
                         creative_json=self.creative_json or "{}")]


class QueuedBatch(Event):
    batch_id: str
    idempotency_key: str
    first_seq: int
    last_seq: int


class AgentQueue(Event):
    sales_agent_id: str
    account_id: str
    next_seq: int
    open_from: int
    batches: list[QueuedBatch] = Field(default_factory=list)
    last_offset: int = -1
    open_items: int = 0
    recent_entries: list[str] = Field(default_factory=list)


class SyncOutcome(StrEnum):
    SYNCING = "SYNCING"
    SYNCED = "SYNCED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    UNKNOWN = "UNKNOWN"


class AdcpError(Event):
    code: str
    message: str
    field: str | None = None
    recovery: str | None = None


class SyncResult(Event):
    result_id: str
    job_id: str
    sales_agent_id: str
    account_id: str
    creative_id: str
    content_version: int
    outcome: SyncOutcome
    batch_id: str | None = None
    idempotency_key: str | None = None
    attempt: int = 1
    action: str | None = None
    platform_creative_id: str | None = None
    approval_status: str | None = None
    reason: str | None = None
    errors: list[AdcpError] = Field(default_factory=list)
    occurred_at: datetime


class SyncResultBatch(Event):
    results: list[SyncResult]


# -- approvals --------------------------------------------------------------------------------
class ApprovalSource(StrEnum):
    WEBHOOK = "WEBHOOK"
    TASK_WEBHOOK = "TASK_WEBHOOK"
    POLL = "POLL"
    SYNC_RESPONSE = "SYNC_RESPONSE"
    #: a poll of everything changed at the agent lately (after a restart): it may name creatives we
    #: never delivered there
    SWEEP = "SWEEP"
    UNKNOWN = "UNKNOWN"


class ApprovalEvent(Event):
    event_id: str
    sales_agent_id: str
    account_id: str
    creative_id: str
    status: str
    rejection_reason: str | None = None
    source: ApprovalSource
    source_idempotency_key: str | None = None
    observed_at: datetime
    agent_updated_at: datetime | None = None


class SyncState(StrEnum):
    PENDING = "PENDING"
    SYNCING = "SYNCING"
    SYNCED = "SYNCED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    UNKNOWN = "UNKNOWN"


class SyncStatus(Event):
    account_id: str
    creative_id: str
    sales_agent_id: str
    sync_status: SyncState
    approval_status: str | None = None
    rejection_reason: str | None = None
    skip_reason: str | None = None
    attempts: int = 0
    last_sync_at: datetime | None = None
    platform_creative_id: str | None = None
    content_version_synced: int | None = None
    last_error: str | None = None
    agent_updated_at: datetime | None = None
    #: when the row's last sync outcome was recorded: sync outcomes are ordered by it (updated_at
    #: also moves with review decisions, which may be observed before the delivery's answer is read)
    sync_updated_at: datetime | None = None
    updated_at: datetime


class HeldDecision(Event):
    """A review decision that arrived before its agent's status row (streams.status.logic)."""

    sales_agent_id: str
    status: str
    rejection_reason: str | None = None
    observed_at: datetime
    agent_updated_at: datetime | None = None


class CreativeSyncState(Event):
    account_id: str
    creative_id: str
    content_version: int = 0
    creative_json: str | None = None
    held_decisions: list[HeldDecision] = Field(default_factory=list)
    rows: list[SyncStatus] = Field(default_factory=list)  # last: topics.codec.RowCachingCodec


class ArchivedCreative(Event):
    account_id: str
    creative_id: str
    archived_at: datetime


# -- registry, campaigns, health, notifications -------------------------------------------------
class AgentProtocol(StrEnum):
    MCP = "MCP"
    A2A = "A2A"
    UNKNOWN = "UNKNOWN"


class SalesAgent(Event):
    sales_agent_id: str
    account_id: str | None = None
    name: str
    agent_url: str
    protocol: AgentProtocol
    auth_header: str | None = None
    credentials_ref: str | None = None
    declared_formats: list[str] = Field(default_factory=list)
    discovered_formats_json: str | None = None
    adcp_versions: list[str] = Field(default_factory=list)
    available: bool = True
    deleted: bool = False
    negotiated_version: str | None = None
    discovered_at: datetime | None = None
    discovery_error: str | None = None
    has_webhook_secret: bool = False
    webhook_jwks_json: str | None = None
    endpoint_url: str | None = None
    version_reason: str | None = None
    revision: int = 0
    accepts_webhooks: bool = False
    circuit: str | None = None
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    updated_at: datetime


class SalesAgentCredentials(Event):
    sales_agent_id: str
    ciphertext: bytes
    updated_at: datetime


class EntityType(StrEnum):
    BRAND_AGENT = "BRAND_AGENT"
    CAMPAIGN = "CAMPAIGN"
    TACTIC = "TACTIC"
    ASSIGNMENT = "ASSIGNMENT"
    UNKNOWN = "UNKNOWN"


class CampaignEntity(Event):
    entity_type: EntityType
    entity_id: str
    account_id: str
    brand_agent_id: str | None = None
    campaign_id: str | None = None
    sales_agent_id: str | None = None
    creative_id: str | None = None
    name: str | None = None
    status: str | None = None
    attributes_json: str | None = None
    deleted: bool = False
    updated_at: datetime
    created_at: datetime | None = None

    @property
    def owner_id(self) -> str:
        """What the entity's key starts with: its campaign (a brand agent: itself). (Partitioned by its account.)"""
        return self.entity_id if self.entity_type is EntityType.BRAND_AGENT else str(self.campaign_id)

    @property
    def key(self) -> str:
        return f"{self.owner_id}/{self.entity_type.value}/{self.entity_id}"


class TacticActivityRecord(Event):
    tactic_id: str
    sales_agent_id: str
    active: bool
    created_at: datetime | None = None
    last_active_at: datetime | None = None
    last_synced_at: datetime | None = None


class CampaignActivity(Event):
    campaign_id: str
    account_id: str
    brand_agent_id: str | None = None
    tactics: list[TacticActivityRecord] = Field(default_factory=list)


class HealthStatus(StrEnum):
    HEALTHY = "HEALTHY"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"
    SYNCING = "SYNCING"  # not yet delivered or approved at every active tactic; no problem either


class CampaignHealth(Event):
    campaign_id: str
    account_id: str
    brand_agent_id: str | None = None
    status: HealthStatus
    synced_tactics: int
    total_tactics: int
    approved_creatives: int
    total_creatives: int
    failures_in_window: int = 0
    last_sync_issue: str | None = None
    reasons: list[str] = Field(default_factory=list)
    window_start: datetime
    window_end: datetime
    computed_at: datetime
    missing_tactics: list[str] = Field(default_factory=list)
    campaign_name: str | None = None


class Urgency(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class Notification(Event):
    notification_id: str
    account_id: str
    type: str
    urgency: Urgency
    message: str
    action_required: str | None = None
    brand_agent_id: str | None = None
    campaign_id: str | None = None
    creative_id: str | None = None
    sales_agent_id: str | None = None
    rejection_reason: str | None = None
    created_at: datetime


class NotificationState(Event):
    notification_id: str
    account_id: str
    read: bool = False
    acknowledged: bool = False
    updated_at: datetime


class StoredNotification(Notification):
    """A notification as its owner keeps it (streams.notify): first seen, with its flags."""

    read: bool = False
    acknowledged: bool = False
    flags_updated_at: datetime | None = None


class NotificationOperation(StrEnum):
    MARK_READ = "MARK_READ"
    ACKNOWLEDGE = "ACKNOWLEDGE"
    MARK_ALL_READ = "MARK_ALL_READ"
    UNKNOWN = "UNKNOWN"


class NotificationCommand(Event):
    command_id: str
    account_id: str
    operation: NotificationOperation
    notification_ids: list[str] = Field(default_factory=list)
    filters_json: str | None = None
    requested_at: datetime


class LibraryCounts(Event):
    account_id: str
    counts: dict[str, int] = Field(default_factory=dict)


class SyncTriggerCommand(Event):
    trigger_id: str
    account_id: str
    trigger: SyncTrigger
    creative_ids: list[str] = Field(default_factory=list)
    sales_agent_ids: list[str] | None = None
    campaign_id: str | None = None
    tactic_id: str | None = None
    brand_agent_id: str | None = None
    requested_at: datetime


class IdempotencyRecord(Event):
    account_id: str
    idempotency_key: str
    payload_hash: str
    task_id: str
    response_json: str
    source_offset: int = -1
    recorded_at: datetime


class PrincipalRecord(Event):
    principal_id: str
    name: str
    accounts: list[str]
    token_sha256: str
    revoked: bool = False
    created_at: datetime
    revoked_at: datetime | None = None


# -- tasks and operations -----------------------------------------------------------------------
class TaskStatus(StrEnum):
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


class TaskResult(Event):
    task_id: str
    account_id: str
    task_type: str
    status: TaskStatus
    result_json: str
    completed_at: datetime


class FailureStage(StrEnum):
    DECODE = "DECODE"
    PROCESS = "PROCESS"
    UNKNOWN = "UNKNOWN"


class DeadLetter(Event):
    dead_letter_id: str
    source_topic: str
    source_partition: int
    source_offset: int
    stage: FailureStage
    processor: str
    error_type: str
    error_message: str
    raw_key: bytes | None = None
    raw_value: bytes | None = None
    source_timestamp: datetime | None = None
    failed_at: datetime


#: schema file stem (avro/<stem>.avsc) -> model
MODELS: dict[str, type[Event]] = {
    "library_command": LibraryCommand,
    "creative_changed": CreativeChanged,
    "stored_creative": StoredCreative,
    "idempotency_record": IdempotencyRecord,
    "library_counts": LibraryCounts,
    "sync_trigger": SyncTriggerCommand,
    "sync_job": SyncJob,
    "sync_result": SyncResult,
    "sync_result_batch": SyncResultBatch,
    "approval_event": ApprovalEvent,
    "sync_status": SyncStatus,
    "sales_agent": SalesAgent,
    "sales_agent_credentials": SalesAgentCredentials,
    "agent_queue": AgentQueue,
    "creative_sync_state": CreativeSyncState,
    "archived_creative": ArchivedCreative,
    "campaign_entity": CampaignEntity,
    "campaign_health": CampaignHealth,
    "campaign_activity": CampaignActivity,
    "notification": Notification,
    "notification_state": NotificationState,
    "stored_notification": StoredNotification,
    "notification_command": NotificationCommand,
    "task_result": TaskResult,
    "principal_record": PrincipalRecord,
    "dead_letter": DeadLetter,
}
