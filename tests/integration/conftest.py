"""Fixtures of the integration tests that talk to simulated sales agents through a real gateway
and worker."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.auth import PrincipalStore
from tests.integration.sales_agents import Agents, Api


@pytest.fixture
async def agents():
    served = Agents()
    yield served
    await served.close()


@pytest.fixture
async def api(topics_created, ready_worker):
    store = PrincipalStore(topics_created.principals_file)
    token = store.add("buyer", ["acct-1"])[1]
    client = TestClient(TestServer(create_app(topics_created.with_(request_budget_s=20), principals=store)))
    await client.start_server()
    yield Api(client, token)
    await client.close()
