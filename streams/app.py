"""The faust app factory: one app per worker process, with the catalogue's topics bound as raw-byte
topics (each processor decodes with the contract's codec, so failures become dead letters) and
tables whose keys, values and changelogs are Avro.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from faust.stores.base import SerializedStore
from faust.tables import TableManager
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from creative_sync.settings import Settings
from streams import transport
from streams.stores import indexed_store_url
from streams.metrics import WorkerMetrics
from streams.owner_client import Owners
from streams.runtime import DeadLetters
from streams import serdes
from streams.serdes import FaustAvroCodec
from streams.sync import outbound
from topics.catalogue import MAX_MESSAGE_BYTES, TABLES, TOPICS, Codecs, table_partitions
from topics.codec import AvroCodec
from topics.credentials import OWNER_QUERIES, SecretBox
from topics.registry import SchemaRegistryClient
from topics.views import AgentDirectory, StatusChanges


@dataclass
class Pipeline:
    """Everything a processor's wiring needs; built once per worker by create_app()."""

    app: faust.App
    settings: Settings
    codecs: Codecs
    metrics: WorkerMetrics
    topics: dict[str, faust.TopicT] = field(default_factory=dict)  # by catalogue role
    tables: dict[str, faust.Table] = field(default_factory=dict)  # by table name
    dead_letters: DeadLetters | None = None
    directory: AgentDirectory | None = None  # the sales-agent registry (streams.sync)
    campaigns: object | None = None  # streams.campaigns.store.CampaignStore: this worker's accounts' campaigns
    status_changes: StatusChanges | None = None  # which creatives' status changes, all partitions (streams.health)
    owners: Owners | None = None  # asks the workers that own other partitions (their status rows: streams.health)
    sync_engine: object | None = None  # streams.sync.agent.SyncEngine, for tests and metrics
    health_monitor: object | None = None  # streams.health.agent.HealthMonitor
    library: object | None = None  # streams.library.store.LibraryStore: the owner's reads (streams.library.reads)
    notifications: object | None = None  # streams.notify.store.NotificationStore (streams.notify.reads)

    async def publish(self, role: str, key: bytes, value: bytes) -> None:
        """Produce one record of topic `role` straight through faust's own aiokafka producer.

        faust's Topic.send wraps every record in a FutureMessage with callbacks, sensors and
        partition lookups, which cost the library processor about as much as its own logic (a
        100-creative command sends 100 events). The record lands in the same producer batches, and
        faust flushes this producer before it commits the source offsets, so at-least-once holds.
        """
        await self.app.producer._ensure_producer().send(self.topics[role].get_topic_name(), key=key, value=value)

    async def write_rows(self, table_name: str, rows: Iterable[tuple[Any, ...]], *, partition: int) -> None:
        """`table[key] = value` for every row `(key, value)` or `(key, value, value_bytes)` (the value
        already encoded, see `row_bytes`; None: encode it here), their changelog records sent like
        `publish` above. A row `(key, None)` deletes the key (a tombstone in the changelog):
        faust's `table.pop(key)` would first read and decode the value only to drop it.

        What faust's `table[key] = value` does, less its per-record send machinery: the row goes to
        the table's store, and its changelog record to the changelog partition of the event being
        processed (the partition faust would pick). The offset of the last record is remembered as
        the store's persisted offset (RocksDB recovery reads the changelog from there), as faust
        does after every record.
        """
        table = self.tables[table_name]
        store, changelog = table.data, table.changelog_topic.get_topic_name()
        encode_key, encode_value = table.key_serializer.dumps, table.value_serializer.dumps
        # A serialized (RocksDB) store takes the changelog's bytes as they are: `store[key] = value`
        # would encode every row a second time (~6 % of the worker while delivering).
        serialized = isinstance(store, SerializedStore)
        producer = self.app.producer._ensure_producer()
        encoded_rows = []
        for key, value, *encoded in rows:
            value_bytes = None if value is None else (
                encoded[0] if encoded and encoded[0] is not None else encode_value(value))
            encoded_rows.append((key, encode_key(key), value, value_bytes))
        if hasattr(store, "put_rows"):  # a store that derives rows of its own from these (the library's index)
            store.put_rows(partition, encoded_rows)
        else:
            for key, key_bytes, value, value_bytes in encoded_rows:
                if serialized and value is None:
                    store._del(key_bytes)
                elif serialized:  # faust's _set, with the partition given (it reads the current event's)
                    store._key_index[key_bytes] = partition
                    store._db_for_partition(partition).put(key_bytes, value_bytes)
                elif value is None:
                    store.pop(key, None)
                else:
                    store[key] = value
        sent = None
        for _, key_bytes, _, value_bytes in encoded_rows:
            sent = await producer.send(changelog, key=key_bytes, value=value_bytes, partition=partition)
        if sent is not None:
            sent.add_done_callback(lambda done: done.cancelled() or done.exception() or store.set_persisted_offset(
                TP(changelog, partition), done.result().offset))

    def as_stored(self, table_name: str, received: bytes) -> bytes | None:
        """`received` (a record as it came from a topic) when the table's changelog would hold
        exactly those bytes: written with the table's current schema, in its framing. A sync
        entry of 100 creatives is then stored as it came, not decoded and encoded again."""
        header = self.tables[table_name].value_serializer.avro.header()
        return received if isinstance(received, bytes) and received.startswith(header) else None

    def row_bytes(self, table_name: str, value: Any, like: AvroCodec) -> tuple[bytes, bytes | None]:
        """`value` encoded by codec `like` (for a topic), and the same bytes again when the table's
        changelog would hold exactly those (same schema, same framing): a creative's status, with a
        row per agent, is then encoded once for both."""
        encoded = like.encode(value)
        return encoded, self.as_stored(table_name, encoded)


def faust_settings(settings: Settings) -> dict:
    return dict(
        broker=f"{transport.SCHEME}://{settings.bootstrap_servers}",
        store=settings.store,
        datadir=str((settings.data_dir / "worker" / settings.app_id).resolve()),
        autodiscover=False,
        processing_guarantee="at_least_once",  # the embedded broker has no transactions: effects are idempotent
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_request_timeout=settings.request_timeout_s,
        broker_commit_interval=settings.commit_interval_s,
        # Every worker also follows the changelogs of partitions another worker owns (faust's
        # standbys, on the same RocksDB directory): a partition moving here after a worker dies
        # replays only what the standby had not read yet (tests/e2e/test_failover.py).
        table_standby_replicas=settings.standby_replicas,
        # aiokafka keeps one open batch per partition and, once it is full, makes the next send
        # wait for the broker's ack: at the default 16 KB a 100-creative command (~100 KB of events
        # and changelog) waited for seven round trips. One batch holds a whole command here.
        producer_max_batch_size=512 * 1024,
        producer_max_request_size=MAX_MESSAGE_BYTES,  # a 4 MiB request's command and events
        topic_disable_leader=True,
        topic_allow_declare=True,
        web_enabled=True,
        web_bind=settings.worker_host,
        web_host=settings.worker_host,
        web_port=settings.worker_port,
        canonical_url=settings.worker_url,  # what the routing (/owners/routing) tells the gateways
        TableManager=PromptTableManager,
    )


class PromptTableManager(TableManager):
    """faust's table manager, without the fixed second it sleeps before registering the tables
    (for apps that define tables after the worker starts): every table here is defined by
    create_app, before the worker starts, so each worker start and restart is a second shorter."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def create_app(settings: Settings, *, metrics: WorkerMetrics | None = None) -> Pipeline:
    if not settings.bootstrap_servers:
        raise ValueError("the worker needs settings.bootstrap_servers")
    # Every connection to a sales agent (httpx, under the adcp SDK) is checked against the policy.
    outbound.install(outbound.Policy(allow_private=settings.allow_private_targets))
    conf = faust_settings(settings)
    Path(conf["datadir"]).mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    app = faust.App(settings.app_id, **conf)
    app.fetch_pacing = settings.pacing()  # read by streams.transport's consumer
    registry = SchemaRegistryClient(settings.schema_registry_url) if settings.schema_registry_url else None
    pipeline = Pipeline(app=app, settings=settings, codecs=Codecs(registry, settings.topic_prefix),
                        metrics=metrics or WorkerMetrics())
    for spec in TOPICS:
        pipeline.topics[spec.role] = app.topic(
            spec.full_name(settings.topic_prefix), key_serializer="raw", value_serializer="raw", partitions=spec.partitions
        )
    for table in TABLES:
        changelog = table.changelog_name(settings.app_id)
        faust_table = app.Table(table.name, partitions=table_partitions(table),
                                store=indexed_store_url(settings.store) if table.indexed else None)
        # faust derives serializers from key_type/value_type (json by default), and App.Table()
        # already built the changelog topic with them: set Avro, then rebuild the changelog topic,
        # or recovery would read Avro changelogs as JSON. The store is built lazily, after this.
        faust_table.key_serializer = FaustAvroCodec(pipeline.codecs.key_codec(table.key_schema, f"{changelog}-key"))
        faust_table.value_serializer = FaustAvroCodec(pipeline.codecs.schema(table.value_schema, f"{changelog}-value"))
        faust_table.changelog_topic = faust_table._new_changelog_topic()
        pipeline.tables[table.name] = faust_table
    for spec in TOPICS:  # usable by name too, e.g. app.topic(..., value_serializer="avro-sync_job")
        serdes.register(f"avro-{spec.value_schema}", pipeline.codecs.value(spec.role))
    pipeline.dead_letters = DeadLetters(pipeline.topics["dead_letters"], pipeline.codecs, pipeline.metrics)
    pipeline.status_changes = StatusChanges(settings.bootstrap_servers, pipeline.codecs, settings.topic_prefix,
                                            on_change=lambda account_id, creative_id: pipeline.health_monitor.creative_changed(account_id, creative_id))
    pipeline.directory = directory = AgentDirectory(settings.bootstrap_servers, pipeline.codecs, settings.topic_prefix,
                                                    SecretBox.from_file(settings.secrets_key_path, create=settings.secrets_dir is None), settings.pacing(),
                                                    also=(pipeline.status_changes,))
    pipeline.owners = Owners(settings.worker_seeds, directory.box.token(OWNER_QUERIES), pipeline.codecs,
                             deadline_s=settings.read_deadline_s)
    _expose_metrics(pipeline)

    @app.task
    async def read_views() -> None:
        await pipeline.owners.start()
        await directory.start()  # and the status changes: one consumer

    from streams.campaigns import agent as campaigns  # processors register their agents on the app
    from streams.campaigns import reads as campaign_reads
    from streams.health import agent as health
    from streams.library import agent as library
    from streams import owners
    from streams.library import reads as library_reads
    from streams.matching import agent as matcher
    from streams.notify import agent as notify
    from streams.notify import reads as notify_reads
    from streams.status import reads as status_reads
    from streams.status import agent as status
    from streams.sync import agent as sync

    library.register(pipeline)
    campaigns.register(pipeline)
    matcher.register(pipeline)
    sync.register(pipeline)
    status.register(pipeline)
    owners.register(pipeline)
    library_reads.register(pipeline)
    status_reads.register(pipeline)
    notify.register(pipeline)
    notify_reads.register(pipeline)
    health.register(pipeline)
    campaign_reads.register(pipeline)
    return pipeline


def _expose_metrics(pipeline: Pipeline) -> None:
    registry = pipeline.metrics.registry
    gauge = pipeline.metrics.assigned_partitions

    @pipeline.app.page("/metrics")
    async def metrics(web, request):  # noqa: ANN001 - faust view signature
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @pipeline.app.page("/healthz")
    async def healthz(web, request):  # noqa: ANN001 - liveness: the event loop answers
        return web.json({"alive": True})

    @pipeline.app.page("/readyz")
    async def readyz(web, request):  # noqa: ANN001 - readiness: in the group, its tables recovered
        app = pipeline.app
        ready = bool(app.tables.recovery.completed.is_set() and not app.rebalancing and not app.in_recovery)
        return web.json({"ready": ready, "assigned_partitions": len(app.consumer.assignment()) if ready else 0},
                        status=200 if ready else 503)

    @pipeline.app.timer(10.0)
    async def measure_lag() -> None:
        """Per topic, the records not yet read on this worker's partitions: the high watermark of the
        last fetch less the next offset to read (faust's consumer keeps the last offset read and the
        committed offset of each partition in `_read_offset` / `_committed_offset`: no public accessor)."""
        consumer = pipeline.app.consumer
        if pipeline.app.rebalancing:
            return
        lags: dict[str, int] = {}
        for tp in consumer.assignment():
            read, committed = consumer._read_offset.get(tp), consumer._committed_offset.get(tp)
            position, highwater = (read + 1 if read is not None else committed), consumer.highwater(tp)
            if highwater is not None and position is not None:
                lags[tp.topic] = lags.get(tp.topic, 0) + max(0, highwater - position)
        for topic_name, lag in lags.items():
            pipeline.metrics.consumer_lag.labels(topic_name).set(lag)

    @pipeline.app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **kwargs):  # noqa: ANN001
        gauge.set(len(assigned))
