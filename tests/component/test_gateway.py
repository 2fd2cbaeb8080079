"""The gateway in-process over real HTTP: health, readiness and AdCP errors when the broker is down,
authentication, and bad input rejected before anything is published."""
from __future__ import annotations

from creative_sync.samples import display_creative, sync_request

import pytest
from aiohttp.test_utils import TestClient, TestServer

from creative_sync.broker import free_port
from creative_sync.settings import Settings
from gateway import keys
from gateway.app import create_app
from gateway.auth import PrincipalStore


@pytest.fixture
async def client_without_broker(tmp_path):
    """A gateway whose broker address answers nothing (a closed loopback port)."""
    settings = Settings(bootstrap_servers=f"127.0.0.1:{free_port()}", principals_file=tmp_path / "p.json", log_format="text",
                        worker_port=free_port(), read_deadline_s=1.0)
    store = PrincipalStore(settings.principals_file)
    _, token = store.add("buyer", ["acct-1"])
    app = create_app(settings, principals=store)
    client = TestClient(TestServer(app))
    await client.start_server()
    client.headers = {"Authorization": f"Bearer {token}"}
    yield client
    await client.close()


def sync_body(**overrides):
    return {**sync_request("acct-1", [display_creative("c1")], idempotency_key="k" * 16), **overrides}


async def test_healthz_is_alive_but_readyz_is_not_ready_without_broker(client_without_broker):
    assert (await client_without_broker.get("/healthz")).status == 200
    response = await client_without_broker.get("/readyz")
    assert response.status == 503 and (await response.json())["ready"] is False


async def test_publishing_without_broker_is_a_transient_adcp_503(client_without_broker):
    response = await client_without_broker.post("/api/v1/sync_creatives", json=sync_body(), headers=client_without_broker.headers)
    assert response.status == 503
    [error] = (await response.json())["errors"]
    assert error["code"] == "SERVICE_UNAVAILABLE" and error["recovery"] == "transient" and error["message"]
    assert response.headers["Retry-After"] == "5"


async def test_metrics_are_exposed_in_prometheus_format(client_without_broker):
    await client_without_broker.get("/healthz")
    text = await (await client_without_broker.get("/metrics")).text()
    assert 'creative_sync_gateway_requests_total{route="/healthz",status="200"} 1.0' in text


async def test_missing_or_unknown_token_is_401_in_adcp_shape(client_without_broker):
    response = await client_without_broker.post("/api/v1/sync_creatives", json=sync_body())
    assert response.status == 401 and (await response.json())["errors"][0]["code"] == "AUTH_REQUIRED"
    response = await client_without_broker.post("/api/v1/sync_creatives", json=sync_body(), headers={"x-adcp-auth": "nope"})
    assert response.status == 401 and (await response.json())["errors"][0]["code"] == "AUTH_INVALID"


async def test_another_accounts_request_is_403(client_without_broker):
    response = await client_without_broker.post("/api/v1/sync_creatives", headers=client_without_broker.headers,
                                                json=sync_body(account={"account_id": "someone-else"}))
    assert response.status == 403
    [error] = (await response.json())["errors"]
    assert error["code"] == "PERMISSION_DENIED" and error["field"] == "account.account_id"


BAD_INPUT_CODES = {"INVALID_REQUEST", "VALIDATION_ERROR", "ACCOUNT_REQUIRED", "VERSION_UNSUPPORTED"}


@pytest.mark.parametrize("body, field", [
    (b"{not json", None),
    (b"[1, 2]", None),
    (sync_body(idempotency_key="short"), "idempotency_key"),
    (sync_body(account=None), "account"),
    (sync_body(creatives=[]), "creatives"),
    (sync_body(creatives=[display_creative("c")] * 2), "creatives[1].creative_id"),
    (sync_body(creatives=[display_creative(f"c{i}") for i in range(101)]), "creatives"),
    (sync_body(creatives=[{**display_creative("c"), "format_kind": "hologram", "format_id": None}]), "creatives[0]"),
    (sync_body(creatives=[{**display_creative("c"), "name": 42}]), "creatives[0].name"),
    (sync_body(validation_mode="sometimes"), "validation_mode"),
    (sync_body(adcp_version="2.5"), "adcp_version"),
    (sync_body(delete_missing=True, creative_ids=["c1"]), "delete_missing"),
])
async def test_bad_input_is_a_correctable_adcp_400_before_any_publish(client_without_broker, body, field):
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = await client_without_broker.post("/api/v1/sync_creatives", headers=client_without_broker.headers, **kwargs)
    assert response.status == 400  # not 503: validation happens before the broker is touched
    errors = (await response.json())["errors"]
    assert all(e["code"] in BAD_INPUT_CODES and e["recovery"] == "correctable" and e["message"] for e in errors)
    if field:
        assert any(e.get("field", "").startswith(field) for e in errors), errors


async def test_oversize_body_is_413_with_the_limit(tmp_path):
    settings = Settings(bootstrap_servers=f"127.0.0.1:{free_port()}", principals_file=tmp_path / "p.json", max_body_bytes=1024)
    store = PrincipalStore(settings.principals_file)
    _, token = store.add("buyer", ["acct-1"])
    async with TestClient(TestServer(create_app(settings, principals=store))) as client:
        response = await client.post("/api/v1/sync_creatives", data=b"x" * 4096, headers={"Authorization": f"Bearer {token}"})
        assert response.status == 413
        assert "1024-byte limit" in (await response.json())["errors"][0]["message"]


async def test_unknown_route_is_an_adcp_404(client_without_broker):
    response = await client_without_broker.post("/api/v1/nope", headers=client_without_broker.headers, json={})
    assert response.status == 404 and (await response.json())["errors"][0]["recovery"] == "correctable"
    response = await client_without_broker.get("/nowhere", headers=client_without_broker.headers)
    assert response.status == 404 and (await response.json())["errors"][0]["code"] == "REFERENCE_NOT_FOUND"


def test_tokens_are_stored_hashed(tmp_path):
    store = PrincipalStore(tmp_path / "p.json")
    principal, token = store.add("buyer", ["a"])
    assert token not in (tmp_path / "p.json").read_text()
    assert store.authenticate(token) == principal and store.authenticate(token + "x") is None


async def test_the_webhook_signing_key_can_be_configured_and_is_published(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_file = tmp_path / "webhooks.pem"
    key_file.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    settings = Settings(bootstrap_servers=f"127.0.0.1:{free_port()}", principals_file=tmp_path / "p.json",
                        webhook_signing_key_file=key_file, log_format="text")
    jwks = []
    for _ in range(2):  # two replicas, one key
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        jwks.append(await (await client.get("/.well-known/jwks.json")).json())
        await client.close()
    assert jwks[0] == jwks[1] and jwks[0]["keys"][0]["crv"] == "Ed25519" and "d" not in jwks[0]["keys"][0]


def test_principals_add_prints_a_token_that_authenticates_and_stores_only_its_hash(tmp_path):
    import os
    import subprocess
    import sys

    principals = tmp_path / "principals.json"
    env = {**os.environ, "CREATIVE_SYNC_PRINCIPALS_FILE": str(principals)}
    printed = subprocess.run([sys.executable, "-m", "creative_sync", "principals", "add", "--file", str(principals), "--name", "buyer",
                              "--account", "acct-1", "--account", "acct-2"],
                             env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    token = next(line.split(": ", 1)[1] for line in printed.splitlines() if line.startswith("token: "))
    assert token and token not in principals.read_text()
    principal = PrincipalStore(principals).authenticate(token)
    assert principal is not None and principal.name == "buyer" and principal.accounts == {"acct-1", "acct-2"}
    assert PrincipalStore(principals).authenticate(token + "x") is None


async def test_list_creatives_needs_no_account_from_a_principal_with_one(client_without_broker, tmp_path):
    # One account: resolved, and the read goes to the worker that owns it, which is not there: a transient error.
    one = await client_without_broker.post("/api/v1/list_creatives", json={}, headers=client_without_broker.headers)
    [error] = (await one.json())["errors"]
    assert one.status == 503 and error["code"] == "SERVICE_UNAVAILABLE" and error["recovery"] == "transient"
    store = client_without_broker.server.app[keys.PRINCIPALS].stores[-1]  # the principals file beside the topic
    _, token = store.add("agency", ["acct-1", "acct-2"])
    several = await client_without_broker.post("/api/v1/list_creatives", json={}, headers={"Authorization": f"Bearer {token}"})
    [error] = (await several.json())["errors"]
    assert several.status == 400 and error["code"] == "ACCOUNT_REQUIRED" and "acct-1, acct-2" in error["suggestion"]


async def test_the_live_feed_is_for_the_accounts_principals_only(client_without_broker):
    assert (await client_without_broker.get("/api/v1/live?account=acct-1")).status == 401  # no token
    store = client_without_broker.server.app[keys.PRINCIPALS].stores[-1]
    _, other = store.add("another-buyer", ["acct-2"])
    refused = await client_without_broker.get("/api/v1/live?account=acct-1", headers={"Authorization": f"Bearer {other}"})
    assert refused.status == 403 and (await refused.json())["errors"][0]["code"] == "PERMISSION_DENIED"
    missing = await client_without_broker.get("/api/v1/live", headers=client_without_broker.headers)
    assert missing.status == 400 and (await missing.json())["errors"][0]["field"] == "account"
    async with client_without_broker.get("/api/v1/live?account=acct-1", headers=client_without_broker.headers) as stream:
        assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
        assert await stream.content.readuntil(b"\n\n") == b'event: ready\ndata: {"account_id": "acct-1"}\n\n'
