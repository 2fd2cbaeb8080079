"""The simulated sales agents are real AdCP servers on loopback: the official adcp client talks to
them over MCP, and their review behaviours show in their answers."""
from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from creative_sync.samples import display_creative, sync_request, video_creative
from creative_sync.sim_agents import Behaviour, SimAgent, SimAgentConfig, create_agent_app

TOKEN = "sim-token-0123456789"


@pytest.fixture
async def serve():
    clients = []

    async def start(config: SimAgentConfig) -> tuple[SimAgent, TestClient]:
        agent = SimAgent(config)
        client = TestClient(TestServer(create_agent_app(agent, TOKEN)))
        await client.start_server()
        clients.append(client)
        return agent, client

    yield start
    for client in clients:
        await client.close()


async def test_the_official_adcp_client_syncs_and_polls_a_simulated_agent(serve):
    from adcp import ADCPClient
    from adcp.types import AgentConfig

    agent, server = await serve(SimAgentConfig("news", "Daily News", ("image",)))
    config = AgentConfig(id="news", agent_uri=str(server.make_url("/mcp")), protocol="mcp", auth_token=TOKEN,
                         auth_type="bearer", auth_header="Authorization")
    async with ADCPClient(config) as client:
        synced = await client.adapter.sync_creatives(sync_request("acct-1", [display_creative("c1"), video_creative("v1")],
                                                                  validation_mode="lenient"))
        assert synced.success, synced.error
        by_id = {c["creative_id"]: c for c in synced.data["creatives"]}
        assert by_id["c1"]["action"] == "created" and by_id["c1"]["status"] == "approved"
        assert by_id["v1"]["action"] == "failed" and "Video format not supported" in by_id["v1"]["errors"][0]["message"]
        listed = await client.adapter.list_creatives({"account": {"account_id": "acct-1"}})
        assert listed.success and [c["creative_id"] for c in listed.data["creatives"]] == ["c1"]
    assert agent.received[0][:2] == ("acct-1", "c1")


async def auth(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def test_review_after_a_delay_and_rejection_by_rule(serve):
    agent, server = await serve(SimAgentConfig("slowreview", "Slow Review", ("image",),
                                               behaviour=Behaviour(review="delayed", review_delay_s=0.2, min_width=300)))
    body = sync_request("a", [display_creative("big", width=300, height=250), display_creative("small", width=160, height=600)])
    answer = await (await server.post("/api/v1/sync_creatives", json=body, headers=await auth(server))).json()
    assert {c["creative_id"]: c["status"] for c in answer["creatives"]} == {"big": "pending_review", "small": "rejected"}
    await asyncio.sleep(0.3)
    listed = await (await server.post("/api/v1/list_creatives", json={"account": {"account_id": "a"}},
                                      headers=await auth(server))).json()
    rows = {c["creative_id"]: c for c in listed["creatives"]}
    assert rows["big"]["status"] == "approved"
    assert rows["small"]["status"] == "rejected" and "below the 300px minimum" in rows["small"]["rejection_reason"]


async def test_a_3_1_agent_wants_format_id_and_idempotency_is_honoured(serve):
    _, server = await serve(SimAgentConfig("legacy", "Old Portal", ("image", "video_hosted"), versions=("3.0", "3.1")))
    headers = await auth(server)
    refused = await server.post("/api/v1/sync_creatives", json=sync_request("a", [video_creative("v")]), headers=headers)
    assert refused.status == 400 and (await refused.json())["errors"][0]["code"] == "VALIDATION_ERROR"
    body = sync_request("a", [display_creative("d")], idempotency_key="legacy-key-000000001")
    first = await (await server.post("/api/v1/sync_creatives", json=body, headers=headers)).json()
    again = await (await server.post("/api/v1/sync_creatives", json=body, headers=headers)).json()
    assert again == {**first, "replayed": True}
    other = {**body, "creatives": [display_creative("e")]}
    assert (await server.post("/api/v1/sync_creatives", json=other, headers=headers)).status == 409
    capabilities = await (await server.post("/api/v1/get_adcp_capabilities", json={}, headers=headers)).json()
    assert capabilities["adcp"]["supported_versions"] == ["3.0", "3.1"]


async def test_down_flaky_and_slow_agents(serve):
    _, down = await serve(SimAgentConfig("down", "Down", behaviour=Behaviour(down=True)))
    response = await down.post("/api/v1/get_adcp_capabilities", json={}, headers=await auth(down))
    assert response.status == 503 and (await response.json())["errors"][0]["recovery"] == "transient"
    _, slow = await serve(SimAgentConfig("slow", "Slow", behaviour=Behaviour(latency_s=0.3)))
    started = asyncio.get_running_loop().time()
    assert (await slow.post("/api/v1/get_adcp_capabilities", json={}, headers=await auth(slow))).status == 200
    assert asyncio.get_running_loop().time() - started >= 0.3
    _, flaky = await serve(SimAgentConfig("flaky", "Flaky", behaviour=Behaviour(error_rate=0.5)))
    statuses = [(await flaky.post("/api/v1/get_adcp_capabilities", json={}, headers=await auth(flaky))).status
                for _ in range(40)]
    assert 503 in statuses and 200 in statuses
    assert (await flaky.post("/api/v1/get_adcp_capabilities", json={})).status in (401, 503)  # no token: never served
