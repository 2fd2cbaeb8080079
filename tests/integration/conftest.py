"""Fixtures of the integration tests that talk to simulated sales agents through a real gateway
and worker."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from creative_sync.processes import WorkerProcess
from gateway.app import create_app
from gateway.auth import PrincipalStore
from tests.conftest import create_topics, isolated_settings
from tests.integration.sales_agents import Agents, Api


@pytest.fixture
async def agents():
    served = Agents()
    yield served
    await served.close()


async def gateway_for(settings, account: str = "acct-1"):  # noqa: ANN001, ANN201
    store = PrincipalStore(settings.principals_file)
    token = store.add(f"buyer-{account}", [account])[1]
    # On the port the worker names in the webhook URLs it gives sales agents.
    client = TestClient(TestServer(create_app(settings.with_(request_budget_s=20), principals=store), port=settings.gateway_port))
    await client.start_server()
    return Api(client, token, account)


@pytest.fixture
async def api(topics_created, ready_worker):
    """The gateway of acct-1's principal, with a worker behind it."""
    served = await gateway_for(topics_created)
    yield served
    await served.client.close()


@pytest.fixture
async def gateway_api(topics_created):
    """The gateway of acct-1's principal alone: for what needs no worker (entities, scoping)."""
    served = await gateway_for(topics_created)
    yield served
    await served.client.close()


def module_deployment(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, **differing) -> Iterator[WorkerProcess]:
    """One deployment (topics, worker) shared by the tests of a module (as a module-scoped fixture):
    each test uses ids (accounts) of its own, and a worker's start (group join, the adcp client's
    import: ~15 CPU-s on these machines) is most of a short test's time. `differing`: settings."""
    folder = tmp_path_factory.mktemp("deployment")
    settings = asyncio.run(create_topics(isolated_settings(kafka_bootstrap, uuid.uuid4().hex[:10], folder).with_(**differing)))
    process = WorkerProcess(settings, folder / "worker.log").start()
    try:
        process.wait_assigned()
        yield process
    finally:
        process.stop(grace_s=0)
