"""Every operation fuzzed from its own input schema, at the real gateway process, over REST, MCP
and A2A: requests with a poison (wrong type, unencodable or invisible string, naive date-time, nesting
bomb, missing field) are all refused with an AdCP error and publish nothing; requests shaped like
the schema never get a 5xx. Raw garbage bodies too. The counts are printed."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from creative_sync.processes import GatewayProcess
from gateway.app import operations_registry
from gateway.auth import PrincipalStore
from tests.fuzzing import json_values, poisoned, shaped
from tests.support import message_count, topic_name
from topics.catalogue import TOPICS

OPERATIONS = list(operations_registry())
TRANSPORTS = ("rest", "mcp", "a2a")
OWN_ACCOUNT = {"account_id": "acct-1"}


@pytest.fixture
def gateway_process(topics_created, tmp_path):
    # No worker: whatever a request published would stay on its topic, and the counts show it.
    store = PrincipalStore(topics_created.principals_file)
    token = store.add("fuzzer", ["acct-1"])[1]
    # (reads of a library then find no owner: a transient SERVICE_UNAVAILABLE after the short deadline)
    process = GatewayProcess(topics_created.with_(request_budget_s=0.2, read_deadline_s=0.05), tmp_path / "gateway.log").start()
    process.token = token
    yield process
    process.stop(grace_s=0)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def mcp_session(gateway: GatewayProcess, headers: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(f"{gateway.base_url}/mcp", headers={"Content-Type": "application/json", **headers},
                                     data=json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                                      "params": {"protocolVersion": "2025-06-18"}}).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return {**headers, "Mcp-Session-Id": response.headers["Mcp-Session-Id"]}


def _requests(poison: bool) -> st.SearchStrategy:
    def of(operation) -> st.SearchStrategy:  # noqa: ANN001
        base = shaped(operation.input_schema).map(
            lambda r: {**r, "account": OWN_ACCOUNT} if isinstance(r, dict) and "account" in r else r)
        if poison:
            base = base.flatmap(lambda r: poisoned(operation.input_schema, r if isinstance(r, dict) else {}))
        return base.map(lambda r: (operation.name, r))
    return st.one_of([of(operation) for operation in OPERATIONS])


class Gateway:
    """Sends one request over REST, MCP or A2A and returns (status, AdCP body, is error)."""

    def __init__(self, process: GatewayProcess) -> None:
        self.process, self.auth = process, {"Authorization": f"Bearer {process.token}"}
        self.mcp = mcp_session(process, self.auth)

    def send(self, tool: str, body: bytes, via: str) -> tuple[int, dict, bool]:
        if via == "rest":
            status, answer = post(f"{self.process.base_url}/api/v1/{tool}", body, self.auth)
            parsed = json.loads(answer)
            return status, parsed, status >= 400
        try:
            arguments = json.loads(body)
        except ValueError:
            arguments = body.decode("latin-1")
        if via == "a2a":
            return self._a2a(tool, arguments)
        envelope = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": tool, "arguments": arguments}}).encode()
        status, message = self._rpc("/mcp", envelope, self.mcp)
        if "error" in message:
            return _refused_by_jsonrpc(status, message)
        result = message["result"]
        return status, result["structuredContent"], bool(result["isError"])


    def _rpc(self, path: str, envelope: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        status, answer = post(f"{self.process.base_url}{path}", envelope, headers)
        reply = json.loads(answer)
        assert reply.get("jsonrpc") == "2.0", answer  # over MCP and A2A, always JSON-RPC
        return status, reply

    def _a2a(self, tool: str, arguments: object) -> tuple[int, dict, bool]:
        message = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
            "role": "user", "messageId": "m-1", "kind": "message",
            "parts": [{"kind": "data", "data": {"skill": tool, "parameters": arguments}}]}}}
        try:
            envelope = json.dumps(message, allow_nan=False).encode()
        except ValueError:
            envelope = json.dumps(message).encode()  # NaN/Infinity: a body the JSON-RPC layer must refuse
        status, reply = self._rpc("/a2a", envelope, self.auth)
        if "error" in reply:
            return _refused_by_jsonrpc(status, reply)
        task = reply["result"]
        data = next(p["data"] for p in task["artifacts"][-1]["parts"] if p.get("kind") == "data")
        return status, data, task["status"]["state"] == "failed"


def _refused_by_jsonrpc(status: int, reply: dict) -> tuple[int, dict, bool]:
    """A JSON-RPC error, in the shape of an AdCP refusal (the fuzz counts both alike)."""
    return status, {"errors": [{"code": "JSONRPC", "message": reply["error"]["message"], "recovery": "correctable"}]}, True


def _no_fault(status: int, answer: dict) -> bool:
    """Not a fault of ours: below 500, or the transient 503 of a read whose owner (a worker) is not
    running in this deployment without workers."""
    return status < 500 or (status == 503 and answer["errors"][0]["code"] == "SERVICE_UNAVAILABLE"
                            and answer["errors"][0]["recovery"] == "transient")


def _assert_adcp_error(answer: dict) -> None:
    errors = answer["errors"]
    assert errors and all(e["code"] and e["message"] and e["recovery"] in ("transient", "correctable", "terminal")
                          for e in errors), answer


async def _published(settings) -> int:  # noqa: ANN001
    return sum([await message_count(settings.bootstrap_servers, topic_name(settings, spec.role)) for spec in TOPICS])


async def test_every_operation_fuzzed_from_its_schema_never_gets_a_5xx_and_poison_publishes_nothing(gateway_process, settings):
    gateway = Gateway(gateway_process)
    seen: Counter = Counter()
    fuzz = hypothesis_settings(max_examples=520, deadline=None, derandomize=True, database=None,
                               suppress_health_check=list(HealthCheck))

    @fuzz
    @given(request=_requests(poison=True), via=st.sampled_from(TRANSPORTS))
    def poisoned_requests(request: tuple[str, dict], via: str) -> None:
        tool, params = request
        status, answer, is_error = gateway.send(tool, json.dumps(params).encode(), via)
        assert status < 500 and is_error, (tool, params, answer)
        _assert_adcp_error(answer)
        seen[("poisoned", tool)] += 1

    @fuzz
    @given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
           tool=st.sampled_from([op.name for op in OPERATIONS]), via=st.sampled_from(TRANSPORTS))
    def garbage(body: bytes, tool: str, via: str) -> None:
        status, answer, is_error = gateway.send(tool, body, via)
        assert _no_fault(status, answer), (tool, body, answer)
        if is_error:
            _assert_adcp_error(answer)
        seen[("garbage", "any")] += 1

    await asyncio.to_thread(poisoned_requests)
    await asyncio.to_thread(garbage)
    assert await _published(settings) == 0  # not one poisoned or garbage request reached a topic

    @fuzz
    @given(request=_requests(poison=False), via=st.sampled_from(TRANSPORTS))
    def shaped_requests(request: tuple[str, dict], via: str) -> None:
        tool, params = request
        status, answer, is_error = gateway.send(tool, json.dumps(params).encode(), via)
        assert _no_fault(status, answer), (tool, params, answer)
        if is_error:
            _assert_adcp_error(answer)
        seen[("shaped", tool)] += 1
        # past every check: answered, or waiting on an owner (a worker) this deployment does not run
        reached = not is_error or answer["errors"][0]["code"] == "SERVICE_UNAVAILABLE"
        seen[("shaped status", "answered" if reached else "refused")] += 1

    await asyncio.to_thread(shaped_requests)
    assert seen[("shaped status", "answered")] >= 50, seen  # the shaped requests reach the handlers, not only the checks
    covered = {tool for kind, tool in seen if kind == "poisoned"}
    assert covered == {op.name for op in OPERATIONS}, sorted({op.name for op in OPERATIONS} - covered)
    total = sum(n for (kind, _), n in seen.items() if kind != "shaped status")
    print(f"\nfuzz: {total} generated requests over REST, MCP and A2A: "
          f"{sum(n for (k, _), n in seen.items() if k == 'poisoned')} poisoned (all refused, nothing published), "
          f"{sum(n for (k, _), n in seen.items() if k == 'shaped')} shaped by the schemas ({seen[('shaped status', 'answered')]} answered, "
          f"{seen[('shaped status', 'refused')]} refused), {seen[('garbage', 'any')]} raw garbage; "
          f"{len(covered)} operations")
