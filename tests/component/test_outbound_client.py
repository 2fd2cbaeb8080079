"""The sync engine's client (the official adcp SDK under httpx) against targets it must not reach
or must not quote: a loopback service is never connected to while the outbound policy forbids
it, and a target that answers with something else than AdCP is reported in our words, never with
the text it sent (which could be an internal page's content)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiohttp import web

from creative_sync.broker import free_port
from streams.sync import outbound
from streams.sync.client import AgentClient, CallError
from topics.credentials import AgentSecrets
from topics.events import AgentProtocol, SalesAgent

pytestmark = pytest.mark.component
PAGE = "<html>internal admin page: db password hunter2</html>"


@pytest.fixture
async def internal_service():
    hits: list[dict] = []

    async def answer(request: web.Request) -> web.Response:
        hits.append(dict(request.headers))
        return web.Response(text=PAGE, content_type="text/html", status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/mcp", hits
    await runner.cleanup()


def _agent(url: str) -> SalesAgent:
    return SalesAgent(sales_agent_id="acct-1~internal", account_id="acct-1", name="Internal", agent_url=url,
                      protocol=AgentProtocol.MCP, updated_at=datetime.now(UTC))


async def test_a_loopback_agent_is_never_connected_to_without_the_allowance(internal_service):
    url, hits = internal_service
    client = AgentClient(_agent(url), AgentSecrets("agent-bearer-token"), timeout_s=20)
    outbound.install(outbound.Policy())
    try:
        with pytest.raises(CallError) as refused:
            await client.call("get_adcp_capabilities", {})
        assert "refused" in str(refused.value) and "loopback" in str(refused.value)
        assert hits == []  # the bearer token went nowhere
    finally:
        outbound.install(outbound.Policy(allow_private=True))
        await client.close()


async def test_what_a_failed_target_answered_is_never_quoted(internal_service):
    url, hits = internal_service
    outbound.install(outbound.Policy(allow_private=True))
    client = AgentClient(_agent(url), AgentSecrets("agent-bearer-token"), timeout_s=20)
    try:
        with pytest.raises(CallError) as failed:
            await client.call("get_adcp_capabilities", {})
        assert hits  # reached (the development allowance) ...
        assert "hunter2" not in str(failed.value) and "internal admin page" not in str(failed.value)  # ... not quoted
    finally:
        await client.close()
