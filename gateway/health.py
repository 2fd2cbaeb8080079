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


@routes.get("/")
async def dashboard(request: web.Request) -> web.Response:
    """The live dashboard: campaign health and notifications of one account, read by the page itself
    through the REST API with the token given in the URL fragment (never sent to the server but as
    the API's Bearer token)."""
    ready = await request.app[keys.BROKER].ready()
    settings = request.app[keys.SETTINGS]
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>creative-sync</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:64rem}}code{{background:#f3f3f3;padding:0 .3em}}
table{{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}}td,th{{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}}
.healthy{{color:#176c2f}}.warning{{color:#a66300}}.critical{{color:#b00020}}.syncing{{color:#35507a}}.high{{font-weight:bold;color:#b00020}}</style></head>
<body><h1>creative-sync</h1>
<p>Broker <code>{settings.bootstrap_servers}</code>: <strong>{"ready" if ready else "not reachable"}</strong></p>
<ul><li>API: MCP at <code>POST /mcp</code>, REST at <code>POST /api/v1/&lt;operation&gt;</code> (Bearer token),
<a href="/api/v1/openapi.json">OpenAPI</a></li>
<li><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></li></ul>
<div id="live"><p>Live view: open this page as <code>/#token=&lt;token&gt;&amp;account=&lt;account_id&gt;</code>
(<code>make up</code> prints the link).</p></div>
<script>
const args = new URLSearchParams(location.hash.slice(1));
const token = args.get("token"), account = args.get("account") || "demo";
const esc = v => String(v ?? "").replace(/[&<>"]/g, c => ({{"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}})[c]);
async function api(op, body) {{
  const r = await fetch("/api/v1/" + op, {{method: "POST", headers: {{"Authorization": "Bearer " + token,
    "Content-Type": "application/json"}}, body: JSON.stringify({{account: {{account_id: account}}, ...body}})}});
  return r.json();
}}
async function refresh() {{
  const [campaigns, notes] = await Promise.all([api("list_campaigns", {{}}),
    api("list_notifications", {{pagination: {{max_results: 20}}}})]);
  let html = "<h2>Campaigns of " + esc(account) + "</h2><table><tr><th>campaign</th><th>health</th><th>tactics synced</th>" +
    "<th>creatives approved</th><th>failures (window)</th><th>last issue</th><th>unread / high</th></tr>";
  for (const c of campaigns.campaigns || []) {{
    const h = c.syncHealth || {{}};
    html += `<tr><td>${{esc(c.name)}}</td><td class="${{esc(h.status)}}">${{esc(h.status || "…")}}</td>` +
      `<td>${{esc(h.syncedTactics)}}/${{esc(h.totalTactics)}}</td><td>${{esc(h.approvedCreatives)}}/${{esc(h.totalCreatives)}}</td>` +
      `<td>${{esc(h.failuresInWindow)}}</td><td>${{esc(h.lastSyncIssue)}}</td>` +
      `<td>${{c.notifications.unread}} / ${{c.notifications.highPriority}}</td></tr>`;
  }}
  html += "</table><h2>Notifications</h2><table><tr><th>when</th><th>type</th><th>urgency</th><th>message</th><th>action</th></tr>";
  for (const n of notes.notifications || []) {{
    html += `<tr><td>${{esc(n.created_at.slice(11, 19))}}</td><td>${{esc(n.type)}}</td><td class="${{esc(n.urgency)}}">` +
      `${{esc(n.urgency)}}</td><td>${{esc(n.message)}}</td><td>${{esc(n.action_required)}}</td></tr>`;
  }}
  document.getElementById("live").innerHTML = html + "</table>";
}}
if (token) {{ refresh(); setInterval(refresh, 2000); }}
</script>
</body></html>"""
    return web.Response(text=html, content_type="text/html")
