"""The gateway's app factory: settings in, aiohttp Application out (broker link, read model and
webhook sender owned by its lifecycle). MCP and REST are both generated from one operation registry.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from creative_sync.settings import Settings
from gateway import a2a, accounts, agent_webhooks, campaigns, creatives, dashboard, health, keys, live, mcp, middleware, notifications, rest, retrieval, syncing
from gateway.auth import PrincipalStore
from gateway.principals import Principals, TopicPrincipals
from gateway.broker import BrokerLink
from gateway.entities import Entities
from gateway.metrics import GatewayMetrics
from gateway.operations import Registry
from gateway.owners import gateway_owners
from gateway.read_model import LibraryView
from gateway.tasks import Tasks
from gateway.webhooks import Rfc9421Signer, TaskWebhooks
from streams.sync.outbound import Policy
from topics.catalogue import Codecs
from topics.credentials import OWNER_QUERIES, SecretBox
from topics.registry import SchemaRegistryClient
from topics.views import AgentDirectory


def _version() -> str:
    try:
        return version("creative-sync")
    except PackageNotFoundError:
        return "0.0.0"


def operations_registry() -> Registry:
    """Every operation of the gateway, served alike over MCP, A2A and REST."""
    return Registry([*creatives.OPERATIONS, *accounts.OPERATIONS, *retrieval.OPERATIONS, *syncing.OPERATIONS,
                     *campaigns.OPERATIONS, *notifications.OPERATIONS])


def create_app(settings: Settings, *, principals: PrincipalStore | None = None,
               metrics: GatewayMetrics | None = None, webhooks: TaskWebhooks | None = None) -> web.Application:
    if not settings.bootstrap_servers:
        raise ValueError("the gateway needs settings.bootstrap_servers")
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[middleware.measure, middleware.errors, middleware.authenticate],
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics or GatewayMetrics()
    registry = SchemaRegistryClient(settings.schema_registry_url) if settings.schema_registry_url else None
    app[keys.CODECS] = codecs = Codecs(registry, settings.topic_prefix)
    # Principals on their topic (every replica alike), and the file's beside them (tests, the demo).
    in_cluster = TopicPrincipals(settings.bootstrap_servers, codecs, settings.topic_prefix)
    app[keys.PRINCIPALS] = Principals(in_cluster, principals or PrincipalStore(settings.principals_file))
    app[keys.BROKER] = BrokerLink(settings.bootstrap_servers, connect_wait_s=settings.broker_connect_wait_s)
    app[keys.LIBRARY_VIEW] = view = LibraryView(settings.bootstrap_servers, codecs, settings.topic_prefix,
                                                pacing=settings.pacing())
    box = SecretBox.from_file(settings.secrets_key_path, create=settings.secrets_dir is None)
    app[keys.LIVE] = feed = live.LiveFeed(settings.bootstrap_servers, codecs, settings.topic_prefix)
    app[keys.AGENTS] = AgentDirectory(settings.bootstrap_servers, codecs, settings.topic_prefix, box, settings.pacing(),
                                      also=(in_cluster, *feed.views))
    app[keys.OWNERS] = gateway_owners(settings.worker_seeds, box.token(OWNER_QUERIES), codecs,
                                      deadline_s=settings.read_deadline_s, metrics=app[keys.METRICS])
    app[keys.INBOUND] = agent_webhooks.Inbound()
    app[keys.CAMPAIGNS] = Entities(app[keys.OWNERS], codecs)
    signer = Rfc9421Signer.from_bundle(settings.signing_key_path.read_bytes()) if settings.signing_key_path else Rfc9421Signer()
    webhooks = webhooks or TaskWebhooks(signer, policy=Policy(allow_private=settings.allow_private_targets))
    app[keys.TASKS] = Tasks(view, webhooks)
    app[keys.OPERATIONS] = operations_registry()
    app[keys.MCP_SESSIONS] = mcp.Sessions(settings.mcp_session_ttl_s)
    app[keys.CLAIMS] = set()
    app[keys.VERSION] = _version()
    app[keys.STARTED_AT] = datetime.now(UTC)
    app[keys.A2A] = a2a.A2AServer(app)
    app.cleanup_ctx.append(_lifecycle(webhooks))
    app.add_routes(health.routes)
    app.add_routes(live.routes)
    app.add_routes(dashboard.routes)
    app.add_routes(mcp.routes)
    app.add_routes(a2a.routes)
    app.add_routes(rest.routes)
    app.add_routes(agent_webhooks.routes)
    return app


def _lifecycle(webhooks: TaskWebhooks):  # noqa: ANN202
    async def owned(app: web.Application) -> AsyncIterator[None]:
        await app[keys.BROKER].start()
        await app[keys.OWNERS].start()
        await app[keys.LIBRARY_VIEW].start()
        await app[keys.AGENTS].start()
        preloading = asyncio.create_task(a2a.preload(), name="a2a-preload")
        yield
        preloading.cancel()
        await asyncio.gather(preloading, return_exceptions=True)
        await webhooks.close()
        await app[keys.AGENTS].stop()
        await app[keys.LIBRARY_VIEW].stop()
        await app[keys.OWNERS].stop()
        await app[keys.BROKER].stop()

    return owned
