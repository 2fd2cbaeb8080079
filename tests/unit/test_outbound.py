"""The outbound policy (streams.sync.outbound) as the validator sees it: which addresses and URLs
a request may go to, with and without the development allowance. Private ranges are checked here,
by the rules alone: no test ever sends traffic to them."""
from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from creative_sync.broker import free_port
from streams.sync import outbound
from streams.sync.outbound import OutboundRefused, Policy, address_problem, check_target, resolve_checked, url_problem

pytestmark = pytest.mark.unit
STRICT, DEV = Policy(), Policy(allow_private=True)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "151.101.1.69"])
def test_public_addresses_are_targets(address):
    assert address_problem(address, STRICT) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "10.0.0.5", "172.16.3.4", "192.168.1.1",
                                     "fd00::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "100.64.0.1"])
def test_loopback_and_private_addresses_are_refused_unless_developing(address):
    assert "loopback or private" in address_problem(address, STRICT)
    if address != "100.64.0.1":  # carrier-grade NAT is not a developer's network
        assert address_problem(address, DEV) is None


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "224.0.0.1", "ff02::1", "240.0.0.1", "0.0.0.0", "::"])
def test_link_local_multicast_reserved_and_unspecified_are_refused_even_when_developing(address):
    assert address_problem(address, STRICT) and address_problem(address, DEV)


@pytest.mark.parametrize("url, problem", [
    ("file:///etc/passwd", "only http and https"), ("gopher://example.com/", "only http and https"),
    ("ftp://example.com/x", "only http and https"), ("javascript:alert(1)", "only http and https"),
    ("http://", "no host"), ("https://user:pw@example.com/", "credentials"), ("http://127.0.0.1:8080/api", "loopback"),
    ("http://[::1]/mcp", "loopback"), ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://example.com:99999/", "not a valid URL"), (42, "string"),
])
def test_urls_that_are_not_targets_are_refused_with_the_reason(url, problem):
    assert problem in (url_problem(url, STRICT) or "")


def test_names_are_left_to_resolution():
    assert url_problem("https://agent.example.com/mcp", STRICT) is None


async def test_a_name_resolving_to_loopback_is_refused_at_registration_and_at_resolution():
    with pytest.raises(OutboundRefused, match="loopback"):
        await check_target("http://localhost:8080/mcp", STRICT)
    with pytest.raises(OutboundRefused, match="loopback"):
        await resolve_checked("localhost", 80, STRICT)
    assert await resolve_checked("localhost", 80, DEV)
    await check_target("https://name.that.does.not.resolve.invalid/mcp", STRICT)  # checked again at connect time


async def test_a_task_webhook_to_an_internal_address_is_not_sent():
    from gateway.webhooks import Rfc9421Signer, TaskWebhooks

    hits = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response()

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    strict, dev = TaskWebhooks(Rfc9421Signer(), policy=STRICT, attempts=1), TaskWebhooks(Rfc9421Signer(), policy=DEV, attempts=1)
    try:
        for url in (f"http://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook"):
            config = {"url": url, "authentication": {"schemes": ["Bearer"], "credentials": "c" * 32}}
            assert await strict.deliver(config, task_id="t", task_type="sync_creatives", status="completed", result={}) is False
        assert hits == []
        config = {"url": f"http://127.0.0.1:{port}/hook", "authentication": {"schemes": ["Bearer"], "credentials": "c" * 32}}
        assert await dev.deliver(config, task_id="t", task_type="sync_creatives", status="completed", result={})
        assert hits == ["/hook"]
    finally:
        await strict.close()
        await dev.close()
        await runner.cleanup()


async def test_httpx_connections_are_checked_when_made_and_the_target_hears_nothing():
    """The connect-time check under every httpx client of the process (the adcp SDK's): a loopback
    server is never reached, with a bearer token or without, while the policy forbids it."""
    import httpx

    hits = []

    async def record(request: web.Request) -> web.Response:
        hits.append(dict(request.headers))
        return web.Response(text="internal secret page")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        outbound.install(STRICT)
        async with httpx.AsyncClient() as client:
            for url in (f"http://127.0.0.1:{port}/mcp", f"http://localhost:{port}/mcp"):
                with pytest.raises(httpx.ConnectError, match="not an allowed target") as refused:
                    await client.post(url, headers={"Authorization": "Bearer agent-token"}, json={})
                assert "internal secret page" not in str(refused.value)
        assert hits == []
        outbound.install(DEV)  # the development allowance: the same call goes through
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/ok")).status_code == 200
        assert len(hits) == 1
    finally:
        outbound.install(DEV)  # tests talk to loopback agents
        await runner.cleanup()
        await asyncio.sleep(0)
