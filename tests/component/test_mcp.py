"""MCP over streamable HTTP at /mcp, in-process: the JSON-RPC surface, sessions, tool results."""
from __future__ import annotations

import pytest
from adcp.validation import validate_response

from gateway.mcp import Sessions


@pytest.fixture
def mcp(gateway_of_two_principals):
    return gateway_of_two_principals


async def rpc(client, method, params=None, *, headers, id_=1):
    message = {"jsonrpc": "2.0", "method": method, **({"id": id_} if id_ is not None else {}),
               **({"params": params} if params is not None else {})}
    return await client.post("/mcp", json=message, headers={"Accept": "application/json, text/event-stream", **headers})


async def session(client) -> dict[str, str]:
    response = await rpc(client, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                               "clientInfo": {"name": "t", "version": "1"}}, headers=client.auth)
    body = await response.json()
    assert response.status == 200 and body["result"]["capabilities"]["tools"] is not None
    return {**client.auth, "Mcp-Session-Id": response.headers["Mcp-Session-Id"]}


async def test_initialize_then_list_and_call_tools(mcp):
    headers = await session(mcp)
    assert (await rpc(mcp, "notifications/initialized", headers=headers, id_=None)).status == 202
    listed = await rpc(mcp, "tools/list", headers=headers)
    # Small enough for a client to load at once (the official schemas inline everything: 2.5 MB).
    assert len(await listed.read()) < 120_000
    tools = (await listed.json())["result"]["tools"]
    by_name = {t["name"]: t for t in tools}
    assert {"sync_creatives", "list_creatives", "get_task_status", "list_creative_formats",
            "get_adcp_capabilities"} <= set(by_name)
    assert "idempotency_key" in by_name["sync_creatives"]["inputSchema"]["properties"]
    result = (await (await rpc(mcp, "tools/call", {"name": "get_adcp_capabilities", "arguments": {}},
                               headers=headers)).json())["result"]
    assert result["isError"] is False and validate_response("get_adcp_capabilities", result["structuredContent"]).valid
    assert result["structuredContent"]["creative"]["has_creative_library"] is True
    signing = result["structuredContent"]["webhook_signing"]  # we sign task webhooks: RFC 9421, HMAC on request
    assert signing["supported"] and signing["algorithms"] == ["ed25519"] and signing["legacy_hmac_fallback"]
    formats = (await (await rpc(mcp, "tools/call", {"name": "list_creative_formats", "arguments": {}},
                                headers=headers)).json())["result"]["structuredContent"]
    assert validate_response("list_creative_formats", formats).valid
    kinds = {f["canonical"]["kind"] for f in formats["formats"]}
    assert {"image", "html5", "video_hosted", "video_vast", "audio_hosted", "native_in_feed"} <= kinds


async def test_tool_failures_are_adcp_errors_with_is_error(mcp):
    headers = await session(mcp)
    result = (await (await rpc(mcp, "tools/call", {"name": "list_creatives",
                                                   "arguments": {"account": {"account_id": "acct-9"}}},
                               headers=headers)).json())["result"]
    assert result["isError"] is True and result["structuredContent"]["errors"][0]["code"] == "PERMISSION_DENIED"
    # The 3.2 envelope of a failed task: status, and the first error as adcp_error.
    assert result["structuredContent"]["status"] == "failed"
    assert result["structuredContent"]["adcp_error"] == result["structuredContent"]["errors"][0]
    unknown = await (await rpc(mcp, "tools/call", {"name": "nope"}, headers=headers)).json()
    assert unknown["error"]["code"] == -32602  # an unknown tool is a protocol error


async def test_sessions_are_required_owned_and_expire(mcp):
    assert (await rpc(mcp, "tools/list", headers=mcp.auth)).status == 400  # no session
    headers = await session(mcp)
    stolen = {**mcp.other, "Mcp-Session-Id": headers["Mcp-Session-Id"]}
    assert (await rpc(mcp, "tools/list", headers=stolen)).status == 404  # another principal's session
    assert (await mcp.delete("/mcp", headers=headers)).status == 200
    assert (await rpc(mcp, "tools/list", headers=headers)).status == 404  # closed: initialize again

    now = [0.0]
    sessions = Sessions(ttl_s=10, clock=lambda: now[0])
    opened = sessions.open("p", "2025-06-18")
    now[0] = 11
    assert sessions.find(opened.session_id, "p") is None


async def test_get_is_405_and_garbage_is_a_json_rpc_error(mcp):
    assert (await mcp.get("/mcp", headers=mcp.auth)).status == 405
    response = await mcp.post("/mcp", data=b"{nope", headers=mcp.auth)
    assert response.status == 400 and (await response.json())["error"]["code"] == -32700
    assert (await mcp.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize"})).status == 401
    headers = await session(mcp)
    assert (await (await rpc(mcp, "resources/list", headers=headers)).json())["error"]["code"] == -32601


async def test_an_operation_added_to_the_registry_appears_on_mcp_rest_and_openapi(mcp):
    from gateway import keys
    from gateway.operations import Operation

    async def echo(call):
        return {"echo": call.params.get("word"), "principal": call.principal.name}

    registry = mcp.server.app[keys.OPERATIONS]
    registry.add(Operation("echo_word", "Echo a word back (test only)",
                           {"type": "object", "properties": {"word": {"type": "string"}}}, echo))
    names = {operation.name for operation in registry}

    document = await (await mcp.get("/api/v1/openapi.json")).json()
    assert {path.removeprefix("/api/v1/") for path in document["paths"]} == names
    reference = document["paths"]["/api/v1/echo_word"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert reference == {"$ref": "#/components/schemas/echo_word_request"}  # each schema once, shared
    assert document["components"]["schemas"]["echo_word_request"]["properties"] == {"word": {"type": "string"}}
    card = await (await mcp.get("/.well-known/agent-card.json")).json()  # A2A: public discovery, same registry
    assert {skill["id"] for skill in card["skills"]} == names

    headers = await session(mcp)
    tools = (await (await rpc(mcp, "tools/list", headers=headers)).json())["result"]["tools"]
    assert {tool["name"] for tool in tools} == names
    called = (await (await rpc(mcp, "tools/call", {"name": "echo_word", "arguments": {"word": "hi"}},
                               headers=headers)).json())["result"]
    assert called["isError"] is False and called["structuredContent"] == {"status": "completed", "echo": "hi", "principal": "buyer"}

    over_rest = await mcp.post("/api/v1/echo_word", json={"word": "hi"}, headers=mcp.auth)
    assert over_rest.status == 200 and await over_rest.json() == {"status": "completed", "echo": "hi", "principal": "buyer"}
    assert (await mcp.post("/api/v1/echo_word", json={"word": "hi"})).status == 401  # unauthenticated


async def test_transport_rules_origin_protocol_version_and_www_authenticate(mcp):
    headers = await session(mcp)
    listed = await rpc(mcp, "tools/list", headers={**headers, "MCP-Protocol-Version": "2025-06-18"})
    assert listed.status == 200
    wrong = await rpc(mcp, "tools/list", headers={**headers, "MCP-Protocol-Version": "1999-01-01"})
    assert wrong.status == 400 and (await wrong.json())["error"]["code"] == -32600
    rebinding = await rpc(mcp, "tools/list", headers={**headers, "Origin": "http://evil.example"})
    assert rebinding.status == 403
    own = await rpc(mcp, "tools/list", headers={**headers, "Origin": f"http://{mcp.server.host}:{mcp.server.port}"})
    assert own.status == 200
    anonymous = await rpc(mcp, "tools/list", headers={})
    assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")


async def test_batches_in_a_2025_03_26_session_and_refused_in_2025_06_18(mcp):
    async def open_session(version):
        response = await rpc(mcp, "initialize", {"protocolVersion": version, "capabilities": {},
                                                 "clientInfo": {"name": "t", "version": "1"}}, headers=mcp.auth)
        assert (await response.json())["result"]["protocolVersion"] == version
        return {**mcp.auth, "Mcp-Session-Id": response.headers["Mcp-Session-Id"]}

    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"},
             {"jsonrpc": "2.0", "method": "notifications/initialized"},  # no answer for a notification
             {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_adcp_capabilities",
                                                                            "arguments": {}}},
             {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "no_such_tool"}}]
    old = await open_session("2025-03-26")
    answers = await (await mcp.post("/mcp", json=batch, headers=old)).json()
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert answers[0]["result"] == {} and answers[1]["result"]["isError"] is False
    assert answers[2]["error"]["code"] == -32602
    only_notifications = await mcp.post("/mcp", json=[batch[1]], headers=old)
    assert only_notifications.status == 202
    with_initialize = await mcp.post("/mcp", json=[{"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": {}}],
                                     headers=old)
    assert with_initialize.status == 400

    current = await open_session("2025-06-18")
    refused = await mcp.post("/mcp", json=batch, headers=current)
    assert refused.status == 400 and (await refused.json())["error"]["code"] == -32600
