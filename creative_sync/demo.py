"""The demo that `make up` seeds through the public API: the simulated sales agents registered
(with their formats declared), a dozen creatives in the library, a brand agent with two campaigns
whose tactics run on the simulated agents, and the creatives assigned to them, so that within a
minute a newcomer sees deliveries, skips, approvals, a rejection, campaign health change and the
notifications that come with it."""
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
    display_creative("demo-billboard", name="Holiday billboard 970x250", width=970, height=250),
    display_creative("demo-mobile-banner", name="Mobile banner 320x50", width=320, height=50),
    display_creative("demo-half-page", name="Half page 300x600", width=300, height=600),
    display_creative("demo-gift-box", name="Gift box 300x250"),
    display_creative("demo-sale", name="Sale leaderboard 728x90", width=728, height=90),
    video_creative("demo-video", name="Holiday spot 15s"),
    video_creative("demo-video-30", name="Holiday spot 30s", duration_ms=30000),
    video_creative("demo-spring-video", name="Spring teaser 15s"),
    video_creative("demo-spring-cutdown", name="Spring cutdown 6s", duration_ms=6000),
]
HOLIDAY = [c["creative_id"] for c in DEMO_CREATIVES if "spring" not in c["creative_id"]]
SPRING = ["demo-spring-video", "demo-spring-cutdown"]


def call(base: str, token: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"{base}/api/v1/{operation}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def finished(base: str, token: str, answer: dict[str, Any], timeout_s: float = 120) -> dict[str, Any]:
    """`answer`, or when it says `submitted` (the worker is still starting), the task's result once done."""
    deadline = time.monotonic() + timeout_s
    while answer.get("status") == "submitted" and time.monotonic() < deadline:
        time.sleep(1)
        task = call(base, token, "get_task_status", {"task_id": answer["task_id"]})
        if task.get("status") == "completed":
            return task.get("result", {})
    return answer


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
    synced = finished(base, token, call(base, token, "sync_creatives",
                                        sync_request(account_id, DEMO_CREATIVES, idempotency_key="demo-library-seed-0001")))
    lines.append(f"library: {len(synced.get('creatives', []))} creatives")
    brand = call(base, token, "create_brand_agent", {"account": account, "brand_agent_id": "demo-acme",
                                                     "name": "Acme Outdoor"})["brand_agent"]
    campaigns = (("demo-holiday", "Holiday Campaign", [a.agent_id for a in DEMO_AGENTS] + [A2A_DEMO_AGENT.agent_id], HOLIDAY),
                 # Spring has only videos, and a tactic on a display-only agent: a campaign with missing creatives.
                 ("demo-spring", "Spring Launch", ["video-stream", A2A_DEMO_AGENT.agent_id], SPRING))
    for campaign_id, name, agent_ids, creative_ids in campaigns:
        call(base, token, "create_campaign", {"account": account, "brand_agent_id": brand["brand_agent_id"],
                                              "campaign_id": campaign_id, "name": name})
        for agent_id in agent_ids:
            call(base, token, "create_tactic", {"account": account, "campaign_id": campaign_id,
                                                "tactic_id": f"{campaign_id}-{agent_id}", "name": f"{name} on {agent_id}",
                                                "sales_agent_id": agent_id})
        sync = call(base, token, "assign_creative", {"account": account, "campaign_id": campaign_id,
                                                     "creative_ids": creative_ids})["sync"]
        answers = finished(base, token, sync).get("creatives", [])  # the matcher's answer, however long it took
        queued, skipped = (sum(len(a[kind]) for a in answers) for kind in ("queued", "skipped"))
        lines.append(f"{name}: {len(agent_ids)} tactics, {len(creative_ids)} creatives; "
                     f"{queued} syncs queued, {skipped} skipped (incompatible)")
    return lines
