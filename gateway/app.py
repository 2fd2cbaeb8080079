"""The gateway's app factory: settings in, aiohttp Application out (the broker link owned by its lifecycle)."""
from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from creative_sync.settings import Settings
from gateway import health, keys, library, middleware
from gateway.auth import PrincipalStore
from gateway.broker import BrokerLink
from gateway.metrics import GatewayMetrics
from topics.catalogue import Codecs
from topics.registry import SchemaRegistryClient


def create_app(settings: Settings, *, principals: PrincipalStore | None = None,
               metrics: GatewayMetrics | None = None) -> web.Application:
    if not settings.bootstrap_servers:
        raise ValueError("the gateway needs settings.bootstrap_servers")
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[middleware.measure, middleware.errors, middleware.authenticate],
    )
    app[keys.SETTINGS] = settings
    app[keys.PRINCIPALS] = principals or PrincipalStore(settings.principals_file)
    app[keys.METRICS] = metrics or GatewayMetrics()
    registry = SchemaRegistryClient(settings.schema_registry_url) if settings.schema_registry_url else None
    app[keys.CODECS] = Codecs(registry, settings.topic_prefix)
    app[keys.BROKER] = BrokerLink(settings.bootstrap_servers)
    app.cleanup_ctx.append(_broker_lifecycle)
    app.add_routes(health.routes)
    app.add_routes(library.routes)
    return app


async def _broker_lifecycle(app: web.Application) -> AsyncIterator[None]:
    await app[keys.BROKER].start()
    yield
    await app[keys.BROKER].stop()
