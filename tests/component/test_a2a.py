"""A2A at /a2a, in-process: the agent card, bearer auth, the JSON-RPC surface (0.3 and 1.0 wire),
failed tasks carrying adcp_error, tasks owned by their principal, and a bounded task store."""
from __future__ import annotations

import pytest

from gateway.a2a import BoundedTaskStore


@pytest.fixture
def a2a(gateway_of_two_principals):
    return gateway_of_two_principals


def send(skill, parameters, *, method="message/send", id_=1):
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": {"message": {
        "role": "user", "messageId": f"m-{id_}", "kind": "message",
        "parts": [{"kind": "data", "data": {"skill": skill, "parameters": parameters}}]}}}


def data_of(task):
    return next(p["data"] for p in task["artifacts"][-1]["parts"] if p.get("kind") == "data")


async def test_the_card_is_public_and_names_every_operation_and_the_bearer_scheme(a2a):
    card = await (await a2a.get("/.well-known/agent-card.json")).json()
    skills = {s["id"] for s in card["skills"]}
    assert {"sync_creatives", "list_creatives", "build_creative", "list_accounts", "get_adcp_capabilities"} <= skills
    assert card["url"].endswith("/a2a") and card["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert card["capabilities"]["streaming"] is False
    assert (await a2a.get("/.well-known/agent.json")).status == 200  # the 0.3 name


async def test_calls_need_a_token_and_answer_tasks(a2a):
    anonymous = await a2a.post("/a2a", json=send("get_adcp_capabilities", {}))
    assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    task = (await (await a2a.post("/a2a", json=send("get_adcp_capabilities", {}), headers=a2a.auth)).json())["result"]
    assert task["status"]["state"] == "completed" and data_of(task)["adcp"]["major_versions"] == [3]

    unknown = (await (await a2a.post("/a2a", json=send("no_such_skill", {}), headers=a2a.auth)).json())["result"]
    assert unknown["status"]["state"] == "failed" and data_of(unknown)["adcp_error"]["code"] == "UNSUPPORTED_FEATURE"
    refused = (await (await a2a.post("/a2a", json=send("list_creatives", {"account": {"account_id": "acct-9"}}),
                                     headers=a2a.auth)).json())["result"]
    assert data_of(refused)["adcp_error"] == {"code": "PERMISSION_DENIED", "message": "This principal may not act for "
                                              "that account.", "field": "account.account_id", "recovery": "terminal"}

    streaming = await (await a2a.post("/a2a", json=send("list_creatives", {}, method="message/stream"),
                                      headers=a2a.auth)).json()
    assert streaming["error"]["code"] == -32004
    deep = await a2a.post("/a2a", data=b"[" * 10_000 + b"]" * 10_000, headers=a2a.auth)
    assert deep.status == 400 and (await deep.json())["error"]["code"] == -32700


async def test_a_task_belongs_to_its_principal(a2a):
    task = (await (await a2a.post("/a2a", json=send("list_creative_formats", {}), headers=a2a.auth)).json())["result"]
    get = {"jsonrpc": "2.0", "id": 7, "method": "tasks/get", "params": {"id": task["id"]}}
    own = await (await a2a.post("/a2a", json=get, headers=a2a.auth)).json()
    assert own["result"]["id"] == task["id"]
    theirs = await (await a2a.post("/a2a", json=get, headers=a2a.other)).json()
    assert "error" in theirs and "result" not in theirs


async def test_the_task_store_keeps_a_bounded_number_of_tasks_per_principal():
    from a2a import types as pb
    from a2a.server.context import ServerCallContext

    from gateway.a2a import _Caller

    store = BoundedTaskStore(per_owner=3)
    context = ServerCallContext(user=_Caller("p"))
    for n in range(10):
        await store.save(pb.Task(id=f"t{n}", context_id="c"), context)
    assert [await store.get(f"t{n}", context) is not None for n in range(10)] == [False] * 7 + [True] * 3
