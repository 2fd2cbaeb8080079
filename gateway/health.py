"""Liveness, readiness, metrics and the landing page."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import a2a, keys

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    broker = await request.app[keys.BROKER].ready()
    caught_up = request.app[keys.LIBRARY_VIEW].caught_up.is_set()  # reads would miss earlier writes until then
    # (a rehearsal of a slow start, CREATIVE_SYNC_GATEWAY_READY_DELAY_S: the tests of `creative-sync up`)
    held = datetime.now(UTC) - request.app[keys.STARTED_AT] < timedelta(seconds=request.app[keys.SETTINGS].gateway_ready_delay_s)
    ready = broker and caught_up and not held
    return web.json_response({"ready": ready, "broker": request.app[keys.BROKER].bootstrap, "broker_ready": broker,
                              "read_model_caught_up": caught_up,
                              # (not part of readiness: A2A's first call loads it if the preload has not)
                              "a2a_binding_loaded": a2a.binding.cache_info().currsize > 0},
                             status=200 if ready else 503)


@routes.get("/.well-known/jwks.json")
async def jwks(request: web.Request) -> web.Response:
    """The public keys of our RFC 9421 webhooks: the one that signs, and those it replaced (a rotation)."""
    return web.json_response({"keys": request.app[keys.TASKS].webhook_signing_keys})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[keys.METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
