"""Generated garbage at the real gateway process, over MCP and REST: never a 5xx, always an AdCP
error shape, and nothing published on the backbone."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from creative_sync.processes import GatewayProcess
from creative_sync.samples import display_creative
from gateway.auth import PrincipalStore
from tests.support import message_count, topic_name

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)
sync_like = st.fixed_dictionaries({}, optional={
    "account": json_values | st.just({"account_id": "acct-1"}) | st.just({"account_id": "acct-2"}),
    "idempotency_key": json_values | st.text(min_size=16, max_size=40),
    "creatives": json_values | st.lists(st.just(display_creative("c1")) | json_values, max_size=3),
    "validation_mode": json_values | st.sampled_from(["strict", "lenient"]),
    "dry_run": json_values, "patch": json_values, "delete_missing": json_values, "creative_ids": json_values,
    "assignments": json_values, "adcp_version": json_values, "push_notification_config": json_values,
})
bodies = st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()) | \
    sync_like.map(lambda v: json.dumps(v).encode())
TOOLS = ["sync_creatives", "list_creatives", "get_task_status", "list_creative_formats", "get_adcp_capabilities"]


@pytest.fixture
def gateway_process(topics_created, tmp_path):
    # No worker: a request that slipped through would be published, and the count below would show it.
    store = PrincipalStore(topics_created.principals_file)
    token = store.add("fuzzer", ["acct-1"])[1]
    process = GatewayProcess(topics_created, tmp_path / "gateway.log").start()
    process.token = token
    yield process
    process.stop(grace_s=0)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def mcp_session(gateway: GatewayProcess, headers: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(f"{gateway.base_url}/mcp", headers={"Content-Type": "application/json", **headers},
                                     data=json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                                      "params": {"protocolVersion": "2025-06-18"}}).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return {**headers, "Mcp-Session-Id": response.headers["Mcp-Session-Id"]}


async def test_garbage_never_causes_a_5xx_or_an_event(gateway_process, settings):
    auth = {"Authorization": f"Bearer {gateway_process.token}"}
    mcp_headers = mcp_session(gateway_process, auth)
    seen: dict[str, int] = {}

    @hypothesis_settings(max_examples=150, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(tool=st.sampled_from(TOOLS), body=bodies, via_mcp=st.booleans())
    def check(tool: str, body: bytes, via_mcp: bool) -> None:
        if via_mcp:
            try:
                arguments = json.loads(body)
            except ValueError:
                arguments = body.decode("latin-1")
            envelope = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                   "params": {"name": tool, "arguments": arguments}}).encode()
            status, answer = post(f"{gateway_process.base_url}/mcp", envelope, mcp_headers)
            assert status < 500, answer
            result = json.loads(answer).get("result") or {}
            if result.get("isError"):
                assert result["structuredContent"]["errors"][0]["code"], answer
        else:
            status, answer = post(f"{gateway_process.base_url}/api/v1/{tool}", body, auth)
            assert status < 500, answer
            if status >= 400:
                errors = json.loads(answer)["errors"]
                assert errors and all(e["code"] and e["message"] and e["recovery"] for e in errors), answer
        seen[f"{'mcp' if via_mcp else 'rest'} {status}"] = seen.get(f"{'mcp' if via_mcp else 'rest'} {status}", 0) + 1

    import asyncio
    await asyncio.to_thread(check)
    assert any(k.startswith("mcp") for k in seen) and any(k.startswith("rest 4") for k in seen), seen
    assert await message_count(settings.bootstrap_servers, topic_name(settings, "library_commands")) == 0
