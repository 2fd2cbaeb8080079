"""One settings object per process, built once from the environment and passed in.

A leaf module: gateway and streams read their configuration from here and import nothing else
of the composition root.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from topics.pacing import FetchPacing


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_opt(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


#: The files of a secrets directory (`creative-sync secrets init`).
SEALING_KEY, SIGNING_KEY = "sealing.key", "webhook-signing.pem"

@dataclass(frozen=True)
class Settings:
    # -- the cluster --------------------------------------------------------------------------
    bootstrap_servers: str | None = None  # None: start the embedded broker (`up`, tests)
    topic_prefix: str = ""
    schema_registry_url: str | None = None
    # -- the worker ---------------------------------------------------------------------------
    app_id: str = "creative-sync"
    store: str = "rocksdb://"  # memory:// in tests
    data_dir: Path = Path("var")
    worker_host: str = "127.0.0.1"
    worker_port: int = 6066  # the worker's web port: /metrics and the owner queries (/owners/...)
    #: The host other processes reach this worker by (its pod IP, its service name), when it binds a
    #: wildcard address (0.0.0.0); None: worker_host.
    worker_advertised_host: str | None = None
    #: Where the gateway first asks which worker owns what (any live worker answers for all; the
    #: others are learnt from its answer). Empty: this settings' own worker_host:worker_port.
    worker_urls: tuple[str, ...] = ()
    # Tuned for fast joins and recovery (faust's defaults: 60 s session → ~30 s joins and
    # ~110 s after a crash on the embedded broker; a crashed member's group rejoins after ~1.8×
    # the session timeout). Heartbeat well under a third of the session; faust heartbeats from
    # its consumer thread, so a busy stream does not starve them.
    session_timeout_s: float = 5.0
    heartbeat_interval_s: float = 1.0
    request_timeout_s: float = 30.0
    # faust hard-codes a 1,500 ms fetch wait: every hop waited ~400 ms p50 for nothing.
    fetch_max_wait_ms: int = 20
    #: The fetch wait of a consumer that saw no record for `idle_after_s` (topics.pacing): an idle
    #: stack then costs ~3 % of a core in all, and the first record after a quiet spell waits up to about
    #: half of it on the embedded broker (nothing on Kafka, which answers a held fetch when data comes).
    idle_fetch_wait_ms: int = 2000
    idle_after_s: float = 5.0
    commit_interval_s: float = 1.0
    #: Standby copies of every table partition kept by other workers (faust's table_standby_replicas).
    standby_replicas: int = 1
    # -- the gateway --------------------------------------------------------------------------
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    max_body_bytes: int = 4 * 1024 * 1024
    #: How long a request waits for the pipeline's answer before answering `submitted` (AdCP async).
    request_budget_s: float = 2.0
    #: How long a read waits for the worker that owns the data (e.g. while a rebalance moves it)
    #: before answering a transient SERVICE_UNAVAILABLE.
    read_deadline_s: float = 10.0
    #: How long a request waits for the gateway's broker connection while it is being made (a
    #: gateway just started) before answering a transient SERVICE_UNAVAILABLE.
    broker_connect_wait_s: float = 3.0
    mcp_session_ttl_s: float = 3600.0
    #: Holds the gateway's /readyz at "not ready" this long after its start: a rehearsal of a slow
    #: start (the tests of `creative-sync up`); 0 in any real use.
    gateway_ready_delay_s: float = 0.0
    #: The gateway's URL as sales agents reach it (their webhooks to us); None: http://<gateway host>:<port>.
    public_url: str | None = None
    #: Ed25519 private key (PEM) signing RFC 9421 webhooks; every gateway replica must share it.
    #: Unset: a key is generated at start (fine for one gateway; its JWKS is at /.well-known/jwks.json).
    webhook_signing_key_file: Path | None = None
    principals_file: Path = Path("var/principals.json")
    #: Fernet key sealing sales agents' secrets on the credentials topic; gateway and workers share it.
    secrets_key_file: Path | None = None  # None: <data_dir>/secrets.key (development: created on first use)
    #: A deployment's secrets (`creative-sync secrets init --dir`): the sealing key and the webhook
    #: signing key, shared by every gateway and worker; set, both must be there or a process refuses to start.
    secrets_dir: Path | None = None
    #: The development allowance of the outbound policy (streams.sync.outbound): sales agents and
    #: webhooks may be on loopback and private networks. Off in production; `make up` and tests turn it on.
    allow_private_targets: bool = False
    # -- the sync engine ----------------------------------------------------------------------
    sync_call_timeout_s: float = 30.0  # one sync_creatives call to a sales agent
    sync_flush_after_s: float = 0.05  # a partial batch waits this long for more creatives
    sync_breaker_threshold: int = 5  # failed calls in a row that open an agent's circuit
    sync_breaker_cool_down_s: float = 15.0
    sync_retry_cap_s: float = 10.0
    discovery_interval_s: float = 3600.0  # re-discovery of an available agent
    poll_interval_s: float = 5.0  # list_creatives polling while reviews are pending
    status_cache_size: int = 20_000  # creatives' sync states the status processor keeps decoded
    #: How long an account's notifications are kept by their owner (the notifications topic's
    #: retention); how long a sync_creatives idempotency key is remembered (its replay window);
    #: how often the owners look for what is older (streams.retention).
    notification_retention_days: float = 30.0
    idempotency_ttl_s: float = 24 * 3600.0
    #: How long the status rows of a removed sales agent are kept after its removal.
    status_retention_days: float = 30.0
    retention_sweep_s: float = 3600.0
    sync_entry_cache_size: int = 2_000  # queued DELIVER entries (up to 100 creatives each) kept decoded for sending
    # -- campaign health (streams/health) -------------------------------------------------------
    health_window_s: float = 900.0  # failures count within this (hopping) window
    health_critical_failure_rate: float = 0.5  # of the pairs with an outcome in the window: above it, critical
    health_review_overdue_s: float = 3600.0  # a review pending longer than this is a warning
    health_heartbeat_s: float = 30.0  # every campaign's health is published again this often
    # -- logs ---------------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: str = "json"  # json | text

    @classmethod
    def from_env(cls) -> "Settings":
        data_dir = Path(_env("CREATIVE_SYNC_DATA_DIR", "var"))
        return cls(
            bootstrap_servers=_env_opt("KAFKA_BOOTSTRAP_SERVERS"),
            topic_prefix=_env("CREATIVE_SYNC_TOPIC_PREFIX", ""),
            schema_registry_url=_env_opt("CREATIVE_SYNC_SCHEMA_REGISTRY_URL"),
            app_id=_env("CREATIVE_SYNC_APP_ID", "creative-sync"),
            store=_env("CREATIVE_SYNC_STORE", "rocksdb://"),
            data_dir=data_dir,
            worker_host=_env("CREATIVE_SYNC_WORKER_HOST", "127.0.0.1"),
            worker_port=int(_env("CREATIVE_SYNC_WORKER_PORT", "6066")),
            worker_advertised_host=_env_opt("CREATIVE_SYNC_WORKER_ADVERTISED_HOST"),
            worker_urls=tuple(u.strip() for u in _env("CREATIVE_SYNC_WORKER_URLS", "").split(",") if u.strip()),
            session_timeout_s=float(_env("CREATIVE_SYNC_SESSION_TIMEOUT_S", "5")),
            heartbeat_interval_s=float(_env("CREATIVE_SYNC_HEARTBEAT_INTERVAL_S", "1")),
            request_timeout_s=float(_env("CREATIVE_SYNC_REQUEST_TIMEOUT_S", "30")),
            fetch_max_wait_ms=int(_env("CREATIVE_SYNC_FETCH_MAX_WAIT_MS", "20")),
            idle_fetch_wait_ms=int(_env("CREATIVE_SYNC_IDLE_FETCH_WAIT_MS", "2000")),
            idle_after_s=float(_env("CREATIVE_SYNC_IDLE_AFTER_S", "5")),
            commit_interval_s=float(_env("CREATIVE_SYNC_COMMIT_INTERVAL_S", "1")),
            standby_replicas=int(_env("CREATIVE_SYNC_STANDBY_REPLICAS", "1")),
            gateway_host=_env("CREATIVE_SYNC_GATEWAY_HOST", "127.0.0.1"),
            gateway_port=int(_env("CREATIVE_SYNC_GATEWAY_PORT", "8080")),
            max_body_bytes=int(_env("CREATIVE_SYNC_MAX_BODY_BYTES", str(4 * 1024 * 1024))),
            request_budget_s=float(_env("CREATIVE_SYNC_REQUEST_BUDGET_S", "2")),
            read_deadline_s=float(_env("CREATIVE_SYNC_READ_DEADLINE_S", "10")),
            broker_connect_wait_s=float(_env("CREATIVE_SYNC_BROKER_CONNECT_WAIT_S", "3")),
            mcp_session_ttl_s=float(_env("CREATIVE_SYNC_MCP_SESSION_TTL_S", "3600")),
            public_url=_env_opt("CREATIVE_SYNC_PUBLIC_URL"),
            webhook_signing_key_file=Path(key) if (key := _env_opt("CREATIVE_SYNC_WEBHOOK_SIGNING_KEY_FILE")) else None,
            principals_file=Path(_env("CREATIVE_SYNC_PRINCIPALS_FILE", str(data_dir / "principals.json"))),
            secrets_key_file=Path(key) if (key := _env_opt("CREATIVE_SYNC_SECRETS_KEY_FILE")) else None,
            secrets_dir=Path(folder) if (folder := _env_opt("CREATIVE_SYNC_SECRETS_DIR")) else None,
            gateway_ready_delay_s=float(_env("CREATIVE_SYNC_GATEWAY_READY_DELAY_S", "0")),
            allow_private_targets=_env("CREATIVE_SYNC_ALLOW_PRIVATE_TARGETS", "false").lower() in ("1", "true", "yes"),
            sync_call_timeout_s=float(_env("CREATIVE_SYNC_SYNC_CALL_TIMEOUT_S", "30")),
            sync_flush_after_s=float(_env("CREATIVE_SYNC_SYNC_FLUSH_AFTER_S", "0.05")),
            sync_breaker_threshold=int(_env("CREATIVE_SYNC_SYNC_BREAKER_THRESHOLD", "5")),
            sync_breaker_cool_down_s=float(_env("CREATIVE_SYNC_SYNC_BREAKER_COOL_DOWN_S", "15")),
            sync_retry_cap_s=float(_env("CREATIVE_SYNC_SYNC_RETRY_CAP_S", "10")),
            discovery_interval_s=float(_env("CREATIVE_SYNC_DISCOVERY_INTERVAL_S", "3600")),
            poll_interval_s=float(_env("CREATIVE_SYNC_POLL_INTERVAL_S", "5")),
            status_cache_size=int(_env("CREATIVE_SYNC_STATUS_CACHE_SIZE", "20000")),
            notification_retention_days=float(_env("CREATIVE_SYNC_NOTIFICATION_RETENTION_DAYS", "30")),
            status_retention_days=float(_env("CREATIVE_SYNC_STATUS_RETENTION_DAYS", "30")),
            idempotency_ttl_s=float(_env("CREATIVE_SYNC_IDEMPOTENCY_TTL_S", str(24 * 3600))),
            retention_sweep_s=float(_env("CREATIVE_SYNC_RETENTION_SWEEP_S", "3600")),
            sync_entry_cache_size=int(_env("CREATIVE_SYNC_SYNC_ENTRY_CACHE_SIZE", "2000")),
            health_window_s=float(_env("CREATIVE_SYNC_HEALTH_WINDOW_S", "900")),
            health_critical_failure_rate=float(_env("CREATIVE_SYNC_HEALTH_CRITICAL_FAILURE_RATE", "0.5")),
            health_review_overdue_s=float(_env("CREATIVE_SYNC_HEALTH_REVIEW_OVERDUE_S", "3600")),
            health_heartbeat_s=float(_env("CREATIVE_SYNC_HEALTH_HEARTBEAT_S", "30")),
            log_level=_env("CREATIVE_SYNC_LOG_LEVEL", "INFO"),
            log_format=_env("CREATIVE_SYNC_LOG_FORMAT", "json"),
        )

    @property
    def webhook_base_url(self) -> str:
        """Where sales agents post their webhooks: /webhooks/sales-agents/<id> under this."""
        return (self.public_url or f"http://{self.gateway_host}:{self.gateway_port}").rstrip("/")

    @property
    def worker_url(self) -> str:
        """This worker as the others and the gateways reach it (faust's canonical URL)."""
        return f"http://{self.worker_advertised_host or self.worker_host}:{self.worker_port}"

    @property
    def worker_seeds(self) -> tuple[str, ...]:
        return self.worker_urls or (self.worker_url,)

    @property
    def secrets_key_path(self) -> Path:
        if self.secrets_dir is not None:
            return self.secrets_dir / SEALING_KEY
        return self.secrets_key_file or self.data_dir / "secrets.key"

    @property
    def signing_key_path(self) -> Path | None:
        """The webhook signing key's PEM (bundle); None: one is generated at start (one gateway only)."""
        return self.secrets_dir / SIGNING_KEY if self.secrets_dir is not None else self.webhook_signing_key_file

    def missing_secrets(self) -> list[str]:
        """What the configuration names and is not there (a process must not start without it)."""
        named = [self.signing_key_path] if self.signing_key_path is not None else []
        if self.secrets_dir is not None:
            named.insert(0, self.secrets_key_path)
        return [f"{path} is missing: create the deployment's secrets with `creative-sync secrets init --dir "
                f"{path.parent}`" for path in named if not path.is_file()]

    def pacing(self) -> "FetchPacing":
        """A fresh fetch pacing for one consumer (topics.pacing)."""
        from topics.pacing import FetchPacing

        return FetchPacing(self.fetch_max_wait_ms, self.idle_fetch_wait_ms, self.idle_after_s)

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment that rebuilds these settings in a child process."""
        env = {
            "CREATIVE_SYNC_TOPIC_PREFIX": self.topic_prefix,
            "CREATIVE_SYNC_APP_ID": self.app_id,
            "CREATIVE_SYNC_STORE": self.store,
            "CREATIVE_SYNC_DATA_DIR": str(self.data_dir),
            "CREATIVE_SYNC_WORKER_HOST": self.worker_host,
            "CREATIVE_SYNC_WORKER_PORT": str(self.worker_port),
            "CREATIVE_SYNC_WORKER_URLS": ",".join(self.worker_urls),
            **({"CREATIVE_SYNC_WORKER_ADVERTISED_HOST": self.worker_advertised_host} if self.worker_advertised_host else {}),
            "CREATIVE_SYNC_SESSION_TIMEOUT_S": str(self.session_timeout_s),
            "CREATIVE_SYNC_HEARTBEAT_INTERVAL_S": str(self.heartbeat_interval_s),
            "CREATIVE_SYNC_REQUEST_TIMEOUT_S": str(self.request_timeout_s),
            "CREATIVE_SYNC_FETCH_MAX_WAIT_MS": str(self.fetch_max_wait_ms),
            "CREATIVE_SYNC_IDLE_FETCH_WAIT_MS": str(self.idle_fetch_wait_ms),
            "CREATIVE_SYNC_IDLE_AFTER_S": str(self.idle_after_s),
            "CREATIVE_SYNC_COMMIT_INTERVAL_S": str(self.commit_interval_s),
            "CREATIVE_SYNC_STANDBY_REPLICAS": str(self.standby_replicas),
            "CREATIVE_SYNC_GATEWAY_HOST": self.gateway_host,
            "CREATIVE_SYNC_GATEWAY_PORT": str(self.gateway_port),
            "CREATIVE_SYNC_MAX_BODY_BYTES": str(self.max_body_bytes),
            "CREATIVE_SYNC_REQUEST_BUDGET_S": str(self.request_budget_s),
            "CREATIVE_SYNC_READ_DEADLINE_S": str(self.read_deadline_s),
            "CREATIVE_SYNC_BROKER_CONNECT_WAIT_S": str(self.broker_connect_wait_s),
            "CREATIVE_SYNC_MCP_SESSION_TTL_S": str(self.mcp_session_ttl_s),
            "CREATIVE_SYNC_PRINCIPALS_FILE": str(self.principals_file),
            "CREATIVE_SYNC_SECRETS_KEY_FILE": str(self.secrets_key_path),
            "CREATIVE_SYNC_ALLOW_PRIVATE_TARGETS": "true" if self.allow_private_targets else "false",
            "CREATIVE_SYNC_SYNC_CALL_TIMEOUT_S": str(self.sync_call_timeout_s),
            "CREATIVE_SYNC_SYNC_FLUSH_AFTER_S": str(self.sync_flush_after_s),
            "CREATIVE_SYNC_SYNC_BREAKER_THRESHOLD": str(self.sync_breaker_threshold),
            "CREATIVE_SYNC_SYNC_BREAKER_COOL_DOWN_S": str(self.sync_breaker_cool_down_s),
            "CREATIVE_SYNC_SYNC_RETRY_CAP_S": str(self.sync_retry_cap_s),
            "CREATIVE_SYNC_DISCOVERY_INTERVAL_S": str(self.discovery_interval_s),
            "CREATIVE_SYNC_POLL_INTERVAL_S": str(self.poll_interval_s),
            "CREATIVE_SYNC_STATUS_CACHE_SIZE": str(self.status_cache_size),
            "CREATIVE_SYNC_NOTIFICATION_RETENTION_DAYS": str(self.notification_retention_days),
            "CREATIVE_SYNC_STATUS_RETENTION_DAYS": str(self.status_retention_days),
            "CREATIVE_SYNC_IDEMPOTENCY_TTL_S": str(self.idempotency_ttl_s),
            "CREATIVE_SYNC_RETENTION_SWEEP_S": str(self.retention_sweep_s),
            "CREATIVE_SYNC_SYNC_ENTRY_CACHE_SIZE": str(self.sync_entry_cache_size),
            "CREATIVE_SYNC_HEALTH_WINDOW_S": str(self.health_window_s),
            "CREATIVE_SYNC_HEALTH_CRITICAL_FAILURE_RATE": str(self.health_critical_failure_rate),
            "CREATIVE_SYNC_HEALTH_REVIEW_OVERDUE_S": str(self.health_review_overdue_s),
            "CREATIVE_SYNC_HEALTH_HEARTBEAT_S": str(self.health_heartbeat_s),
            "CREATIVE_SYNC_LOG_LEVEL": self.log_level,
            "CREATIVE_SYNC_LOG_FORMAT": self.log_format,
        }
        if self.bootstrap_servers:
            env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        if self.schema_registry_url:
            env["CREATIVE_SYNC_SCHEMA_REGISTRY_URL"] = self.schema_registry_url
        if self.public_url:
            env["CREATIVE_SYNC_PUBLIC_URL"] = self.public_url
        if self.webhook_signing_key_file:
            env["CREATIVE_SYNC_WEBHOOK_SIGNING_KEY_FILE"] = str(self.webhook_signing_key_file)
        if self.secrets_dir:
            env["CREATIVE_SYNC_SECRETS_DIR"] = str(self.secrets_dir)
        if self.gateway_ready_delay_s:
            env["CREATIVE_SYNC_GATEWAY_READY_DELAY_S"] = str(self.gateway_ready_delay_s)
        return env
