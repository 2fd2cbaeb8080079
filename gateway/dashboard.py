"""The live dashboard at `/`: one account's campaigns (health, tactics and their sales agents, the
failing ones marked) and notifications (high urgency first, low ones folded). The page reads
everything through the API with the token from its URL fragment (never sent to the server but as
the API's Bearer token), and reads again when the live feed (gateway.live, server-sent events from
the health and notification topics) says something changed: no polling. Every text from the API is
escaped before it reaches the DOM."""
from __future__ import annotations

import html

from aiohttp import web

from gateway import keys

routes = web.RouteTableDef()

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>creative-sync</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}code{background:#f3f3f3;padding:0 .3em}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left;vertical-align:top}
.healthy{color:#176c2f}.warning{color:#a66300}.critical{color:#b00020}.syncing{color:#35507a}.high{font-weight:bold;color:#b00020}
.failing{color:#b00020;font-weight:bold}.error{background:#fde7ea;border:1px solid #b00020;padding:.5rem 1rem}
ul.tactics{margin:0;padding-left:1rem}#state{color:#666;font-size:.9em}</style></head>
<body><h1>creative-sync</h1>
<p>Broker <code>__BROKER__</code>: <strong>__READY__</strong> <span id="state"></span></p>
<ul><li>API: MCP at <code>POST /mcp</code>, REST at <code>POST /api/v1/&lt;operation&gt;</code> (Bearer token),
<a href="/api/v1/openapi.json">OpenAPI</a></li>
<li><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></li></ul>
<div id="live"><p>Live view: open this page as <code>/#token=&lt;token&gt;&amp;account=&lt;account_id&gt;</code>
(<code>make up</code> prints the link).</p></div>
<script>
const args = new URLSearchParams(location.hash.slice(1));
const token = args.get("token"), account = args.get("account") || "demo";
const esc = v => String(v ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"})[c]);
const URGENCY = {high: 0, medium: 1, low: 2};
class Refused extends Error {}
async function api(op, body) {
  const r = await fetch("/api/v1/" + op, {method: "POST", headers: {"Authorization": "Bearer " + token,
    "Content-Type": "application/json"}, body: JSON.stringify({account: {account_id: account}, ...body})});
  const answer = await r.json();
  if (r.status === 401 || r.status === 403) throw new Refused((answer.errors || [{}])[0].message || r.statusText);
  return answer;
}
function showError(message) {
  document.getElementById("live").innerHTML = '<p class="error" id="error">' + esc(message) + "</p>";
}
async function refresh() {
  let campaigns, notes, agents;
  try {
    [campaigns, notes, agents] = await Promise.all([api("list_campaigns", {}),
      api("list_notifications", {pagination: {max_results: 50}}), api("list_sales_agents", {})]);
  } catch (e) {
    if (e instanceof Refused) { showError("The token was refused for account " + account + ": " + e.message); return false; }
    throw e;
  }
  const agentById = Object.fromEntries((agents.sales_agents || []).map(a => [a.sales_agent_id, a]));
  const tactics = await Promise.all((campaigns.campaigns || []).map(c =>
    api("list_tactics", {campaign_id: c.campaign_id}).then(t => t.tactics || [], () => [])));
  let out = "<h2>Campaigns of " + esc(account) + "</h2><table id=campaigns><tr><th>campaign</th><th>health</th>" +
    "<th>tactics (sales agent)</th><th>creatives approved</th><th>failures (window)</th><th>issue</th><th>unread / high</th></tr>";
  (campaigns.campaigns || []).forEach((c, i) => {
    const h = c.syncHealth || {};
    const rows = tactics[i].map(t => {
      const agent = agentById[t.sales_agent_id] || {};
      const failing = agent.available === false;
      return `<li class="${failing ? "failing" : ""}">${esc(t.name)} (${esc(agent.name || t.sales_agent_id)}` +
        `${failing ? ": " + esc((agent.live || {}).state || "unavailable") : ""})</li>`;
    }).join("");
    out += `<tr class="campaign" data-campaign="${esc(c.campaign_id)}"><td class="name">${esc(c.name)}</td>` +
      `<td class="health ${esc(h.status)}">${esc(h.status || "…")}</td><td><ul class="tactics">${rows}</ul></td>` +
      `<td>${esc(h.approvedCreatives)}/${esc(h.totalCreatives)}</td><td>${esc(h.failuresInWindow)}</td>` +
      `<td>${esc(h.lastSyncIssue)}</td><td>${esc(c.notifications.unread)} / ${esc(c.notifications.highPriority)}</td></tr>`;
  });
  const ordered = [...(notes.notifications || [])].sort((a, b) =>
    (URGENCY[a.urgency] ?? 3) - (URGENCY[b.urgency] ?? 3) || String(b.created_at).localeCompare(String(a.created_at)));
  const row = n => `<tr class="note ${esc(n.urgency)}"><td>${esc(String(n.created_at).slice(11, 19))}</td><td>${esc(n.type)}</td>` +
    `<td class="${esc(n.urgency)}">${esc(n.urgency)}</td><td>${esc(n.message)}</td><td>${esc(n.action_required)}</td></tr>`;
  const head = "<tr><th>when</th><th>type</th><th>urgency</th><th>message</th><th>action</th></tr>";
  const low = ordered.filter(n => n.urgency === "low"), rest = ordered.filter(n => n.urgency !== "low");
  out += "</table><h2>Notifications</h2><table id=notifications>" + head + rest.map(row).join("") + "</table>";
  if (low.length) out += `<details id=low><summary>${low.length} low-urgency</summary><table>${head}${low.map(row).join("")}</table></details>`;
  document.getElementById("live").innerHTML = out;
  return true;
}
let pending = null;
function soon() { if (!pending) pending = setTimeout(() => { pending = null; refresh().catch(() => {}); }, 150); }
async function follow() {
  for (;;) {
    try {
      const r = await fetch("/api/v1/live?account=" + encodeURIComponent(account), {headers: {"Authorization": "Bearer " + token}});
      if (r.status === 401 || r.status === 403) { showError("The token was refused for account " + account); return; }
      document.getElementById("state").textContent = "(live)";
      const reader = r.body.getReader(), decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true});
        let end;
        while ((end = buffer.indexOf("\\n\\n")) >= 0) {
          const event = buffer.slice(0, end); buffer = buffer.slice(end + 2);
          if (/^event: (health|notification|resync)$/m.test(event)) soon();
        }
      }
    } catch (e) { /* the gateway restarted, or the network: follow again */ }
    document.getElementById("state").textContent = "(reconnecting)";
    await new Promise(resolve => setTimeout(resolve, 2000));
    soon();
  }
}
if (token) refresh().then(ok => { if (ok) follow(); }).catch(e => showError("The dashboard could not read the API: " + e));
</script>
</body></html>"""


@routes.get("/")
async def dashboard(request: web.Request) -> web.Response:
    ready = await request.app[keys.BROKER].ready()
    page = PAGE.replace("__BROKER__", html.escape(request.app[keys.SETTINGS].bootstrap_servers or "")).replace(
        "__READY__", "ready" if ready else "not reachable")
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})
