"""Liveness, readiness, metrics and the landing page."""
from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import keys

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    broker = await request.app[keys.BROKER].ready()
    caught_up = request.app[keys.LIBRARY_VIEW].caught_up.is_set()  # reads would miss earlier writes until then
    ready = broker and caught_up
    return web.json_response({"ready": ready, "broker": request.app[keys.BROKER].bootstrap, "broker_ready": broker,
                              "read_model_caught_up": caught_up}, status=200 if ready else 503)


@routes.get("/.well-known/jwks.json")
async def jwks(request: web.Request) -> web.Response:
    """The public key that signs our RFC 9421 webhooks."""
    return web.json_response({"keys": [request.app[keys.TASKS].webhook_signing_key]})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[keys.METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/")
async def dashboard(request: web.Request) -> web.Response:
    ready = await request.app[keys.BROKER].ready()
    settings = request.app[keys.SETTINGS]
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>creative-sync</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:52rem}}code{{background:#f3f3f3;padding:0 .3em}}</style></head>
<body><h1>creative-sync</h1>
<p>Broker <code>{settings.bootstrap_servers}</code>: <strong>{"ready" if ready else "not reachable"}</strong></p>
<ul><li>API: MCP at <code>POST /mcp</code>, REST at <code>POST /api/v1/&lt;operation&gt;</code> (Bearer token),
<a href="/api/v1/openapi.json">OpenAPI</a></li>
<li><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></li></ul>
</body></html>"""
    return web.Response(text=html, content_type="text/html")
