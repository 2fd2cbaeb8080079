"""Fixtures of the in-process component tests."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from creative_sync.broker import free_port
from creative_sync.settings import Settings
from gateway.app import create_app
from gateway.auth import PrincipalStore


@pytest.fixture
async def gateway_of_two_principals(tmp_path):
    """A gateway with no broker or worker behind it, and two principals of acct-1: `auth`, `other`."""
    settings = Settings(bootstrap_servers=f"127.0.0.1:{free_port()}", principals_file=tmp_path / "p.json",
                        log_format="text", worker_port=free_port(), read_deadline_s=0.5)
    store = PrincipalStore(settings.principals_file)
    tokens = [store.add(name, ["acct-1"])[1] for name in ("buyer", "other")]
    client = TestClient(TestServer(create_app(settings, principals=store)))
    await client.start_server()
    client.auth = {"Authorization": f"Bearer {tokens[0]}"}
    client.other = {"Authorization": f"Bearer {tokens[1]}"}
    yield client
    await client.close()
