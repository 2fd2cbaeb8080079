"""The demo that `make up` seeds through the public API: the simulated sales agents registered
(with their formats declared), a few creatives in the library, and a sync of each to every
compatible agent, so that a newcomer sees deliveries, skips, approvals and a rejection at once."""
from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from creative_sync.samples import display_creative, sync_request, video_creative
from creative_sync.sim_agents import A2A_DEMO_AGENT, DEMO_AGENTS

DEMO_CREATIVES = [
    display_creative("demo-banner", name="Holiday banner 300x250"),
    display_creative("demo-leaderboard", name="Holiday leaderboard 728x90", width=728, height=90),
    display_creative("demo-skyscraper", name="Narrow skyscraper 160x600", width=160, height=600),
    video_creative("demo-video", name="Holiday spot 15s"),
]


def call(base: str, token: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"{base}/api/v1/{operation}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def seed(base: str, token: str, account_id: str, agent_urls: list[str], agent_token: str) -> list[str]:
    """Registers the demo agents, syncs the demo creatives to them; answers what it did, line by line."""
    account = {"account_id": account_id}
    lines = []
    for config, url in zip(DEMO_AGENTS, agent_urls):
        call(base, token, "register_sales_agent", {
            "account": account, "sales_agent_id": config.agent_id, "name": config.name, "agent_url": url, "protocol": "mcp",
            "auth": {"token": agent_token, "header": "Authorization"}, "formats": list(config.format_kinds)})
        lines.append(f"registered {config.name} ({url})")
    a2a_url = agent_urls[-1].rsplit(":", 1)[0] + f":{int(agent_urls[-1].rsplit(':', 1)[1].split('/')[0]) + 1}"
    call(base, token, "register_sales_agent", {
        "account": account, "sales_agent_id": A2A_DEMO_AGENT.agent_id, "name": A2A_DEMO_AGENT.name, "agent_url": a2a_url,
        "protocol": "a2a", "auth": {"token": agent_token, "header": "Authorization"},
        "formats": list(A2A_DEMO_AGENT.format_kinds)})
    lines.append(f"registered {A2A_DEMO_AGENT.name} ({a2a_url}, A2A)")
    synced = call(base, token, "sync_creatives", sync_request(account_id, DEMO_CREATIVES, idempotency_key="demo-library-seed-0001"))
    deadline = time.monotonic() + 120
    while synced.get("status") == "submitted" and time.monotonic() < deadline:  # the worker is still starting
        time.sleep(1)
        task = call(base, token, "get_task_status", {"task_id": synced["task_id"]})
        synced = task.get("result", synced) if task.get("status") == "completed" else synced
    lines.append(f"library: {len(synced.get('creatives', []))} creatives")
    answer = call(base, token, "sync_creative_to_sales_agents",
                  {"account": account, "creative_ids": [c["creative_id"] for c in DEMO_CREATIVES]})
    for creative in answer["creatives"]:
        queued = ", ".join(q["name"] for q in creative["queued"]) or "nobody"
        lines.append(f"{creative['creative_id']}: queued to {queued}; skipped {len(creative['skipped'])}")
    return lines
