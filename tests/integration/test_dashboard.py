"""The live dashboard in a real browser (Debian's headless Chromium, driven by Playwright): the page
shows a campaign's health, tactics and sales agents from the API, turns from healthy to critical
when a sales agent rejects the campaign's only creative, without a reload and without polling (the
live feed's server-sent events say when to read again), puts the high-urgency notification first,
escapes a hostile campaign name, and says so when the token is refused."""
from __future__ import annotations

import asyncio
import shutil

import pytest
from playwright.async_api import async_playwright

from creative_sync.sim_agents import SimAgentConfig
from gateway.webhooks import hmac_headers
from tests.integration.sales_agents import status_webhook, eventually, image_kind_creative, register
from topics.ids import scoped, webhook_path
from creative_sync.samples import sync_request

SECRET = "the-news-agents-webhook-secret-0123456789"
HOSTILE = '<img src=x onerror="window.__pwned=1">Spring <b>sale</b>'


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is needed (`apt-get install chromium`: .ci/run installs it)"
    return found


@pytest.mark.settings(health_heartbeat_s=5.0)
async def test_the_dashboard_turns_critical_live_escapes_names_and_refuses_a_wrong_token(api, agents):
    account = {"account_id": "acct-1"}
    await agents.add(SimAgentConfig("news", "Daily News", ("image",)))
    await register(api, agents, "news", "Daily News", formats=["image"], webhook_secret=SECRET)
    await api.call("sync_creatives", sync_request("acct-1", [image_kind_creative("dash-1", 300, 250)]))
    brand = (await api.call("create_brand_agent", {"account": account, "name": "Acme"}))["brand_agent"]
    await api.call("create_campaign", {"account": account, "brand_agent_id": brand["brand_agent_id"], "campaign_id": "spring",
                                       "name": HOSTILE})
    await api.call("create_tactic", {"account": account, "campaign_id": "spring", "tactic_id": "t-news", "name": "News display",
                                     "sales_agent_id": "news"})
    await api.call("assign_creative", {"account": account, "campaign_id": "spring", "creative_ids": ["dash-1"]})

    async def healthy() -> bool:
        [campaign] = (await api.call("list_campaigns", {"account": account}))["campaigns"]
        return (campaign["syncHealth"] or {}).get("status") == "healthy"
    await eventually(healthy, timeout=120, what="the campaign healthy: its creative synced and approved")

    base = str(api.client.make_url("/"))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            reads: list[str] = []
            page.on("request", lambda request: reads.append(request.url) if "/api/v1/list_campaigns" in request.url else None)
            await page.goto(f"{base}#token={api.token}&account=acct-1")
            await page.wait_for_function("document.querySelector('.campaign .health')?.textContent === 'healthy'",
                                         timeout=60_000)
            assert await page.text_content(".campaign .name") == HOSTILE  # shown as text
            assert await page.evaluate("window.__pwned") is None and await page.query_selector("#live img") is None
            assert "News display (Daily News)" in await page.text_content(".campaign .tactics")
            await page.wait_for_function("document.getElementById('state')?.textContent === '(live)'", timeout=30_000)

            before = len(reads)
            await asyncio.sleep(6)  # quiet: a polling page would read the campaigns two or three times by now
            assert len(reads) == before, "the page polls"

            body = status_webhook("acct-1", "dash-1", key="dash-rejection-1", to="rejected", reason="Logo too small")
            response = await api.client.post(webhook_path(scoped("acct-1", "news")), data=body,
                                             headers={"Content-Type": "application/json", **hmac_headers(SECRET, body)})
            assert response.status == 200
            await page.wait_for_function("document.querySelector('.campaign .health')?.textContent === 'critical'",
                                         timeout=60_000)  # read from the DOM of the same page: no reload
            assert len(reads) > before  # read again because the feed said so
            await page.wait_for_function(  # the rejection, high urgency, before any other urgency
                "[...document.querySelectorAll('#notifications tr.note.high')].some(r => r.textContent.includes('Logo too small'))",
                timeout=30_000)
            urgencies = await page.eval_on_selector_all("#notifications tr.note", "rows => rows.map(r => r.classList[1])")
            assert urgencies == sorted(urgencies, key=["high", "medium"].index) and urgencies[0] == "high", urgencies
            assert await page.evaluate("window.__pwned") is None  # the name inside a notification's message too

            refused = await browser.new_page()
            await refused.goto(f"{base}#token=not-a-token&account=acct-1")
            await refused.wait_for_selector("#error", timeout=30_000)
            assert "refused" in await refused.text_content("#error")
        finally:
            await browser.close()
