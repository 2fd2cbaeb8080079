"""Calls to one sales agent with the official adcp client (MCP or A2A): one client per agent and
one request per call, since the client's multi-agent fan-out would reuse an idempotency key
across agents, which AdCP forbids. Failures come back as CallFailure values, never exceptions.

Importing the client builds the SDK's pydantic type graph (~20 s of CPU here), so it is loaded
once per process, in a thread, the first time an agent needs it (a worker that owns no sales
agent never pays for it).
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from streams.sync import outbound
from streams.sync.logic import CallFailure, choose_version, failure_from_errors
from topics.credentials import AgentSecrets
from topics.events import SalesAgent

log = logging.getLogger(__name__)
_sdk: asyncio.Future | None = None


#: The largest answer read from an agent. Real agents' tool lists run to several MB (the
#: reference salesagent's is 3.3 MB) and list_creatives pages of agents that ignore filters are
#: large too; what we keep of an answer is bounded elsewhere (pages are read one at a time).
MAX_ANSWER_BYTES = 64 * 1024 * 1024


def _import_sdk() -> tuple[Any, Any]:
    # While this thread computes, the event loop's thread would wait up to the interpreter's
    # switch interval (5 ms) for the GIL after every I/O call: measured, the worker fell from
    # ~300 to ~70 library commands/s during the import. A short interval bounds that wait.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        from adcp import ADCPClient
        from adcp.types import AgentConfig

        _read_large_answers_without_tool_lists()
        # The SDK logs every failed connection attempt at ERROR with tracebacks (dozens a minute
        # for an agent that is down); the sync engine logs one line per change of an agent's state.
        for name in ("adcp", "mcp", "httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    finally:
        sys.setswitchinterval(previous)
    return ADCPClient, AgentConfig


def _read_large_answers_without_tool_lists() -> None:
    """Two settings the adcp client (9.2) gives no option for, set on its MCP module:

    - the MCP session validates each tool's answer against the output schema from `tools/list`,
      so its first call of every tool fetched the agent's whole tool list (several MB at real
      agents, 25 % of a call's CPU at ours). We read answers defensively and check nothing
      against the agent's schemas (`_no_schema_checks`), so the session skips that, and never
      asks for tools/list;
    - its streamable-HTTP transport caps one server-sent event at 1 MiB ("Server-sent event
      exceeded the 1048576 byte limit"): raised to MAX_ANSWER_BYTES.
    """
    from adcp.protocols import mcp as adcp_mcp

    if getattr(adcp_mcp, "_creative_sync_adjusted", False):
        return

    class Session(adcp_mcp._ClientSession):
        async def validate_tool_result(self, name: str, result: Any) -> None:
            return None

    class Transport(adcp_mcp.StreamableHTTPTransport):
        def __init__(self, url: str, **kwargs: Any) -> None:
            super().__init__(url, **{**kwargs, "max_sse_event_size": MAX_ANSWER_BYTES})

    adcp_mcp._ClientSession, adcp_mcp.StreamableHTTPTransport = Session, Transport
    adcp_mcp._creative_sync_adjusted = True


def _no_schema_checks() -> Any:
    """The client's own schema checks (python jsonschema) took ~25 % of a worker's CPU: requests are
    built from creatives the library already checked, and answers are read defensively (real agents
    differ; we accept what we can use), so neither side is checked again here."""
    from adcp.validation.client_hooks import ValidationHookConfig

    return ValidationHookConfig(requests="off", responses="off")


async def sdk() -> tuple[Any, Any]:
    global _sdk
    if _sdk is None:
        _sdk = asyncio.ensure_future(asyncio.to_thread(_import_sdk))
    return await asyncio.shield(_sdk)


class CallError(Exception):
    def __init__(self, failure: CallFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class AgentClient:
    """A connection to one sales agent; `call` answers the AdCP response body or raises CallError."""

    def __init__(self, agent: SalesAgent, secrets: AgentSecrets | None, *, timeout_s: float = 30.0,
                 poll_every_s: float = 1.0) -> None:
        self.agent, self._secrets, self._timeout, self._poll = agent, secrets or AgentSecrets(), timeout_s, poll_every_s
        self._client: Any = None
        self._pinned: str | None = agent.negotiated_version

    @property
    def pinned(self) -> str | None:
        """The AdCP version this client speaks (None: the SDK's own choice)."""
        return self._pinned

    async def pin(self, version: str | None) -> None:
        """Speak `version` from the next call on (discovery learns it from the capabilities)."""
        if version != self._pinned:
            self._pinned = version
            await self.close()

    async def _connected(self) -> Any:
        if self._client is None:
            address = self.agent.endpoint_url or self.agent.agent_url
            refused = await outbound.refusal(address)
            if refused:
                raise CallError(CallFailure(f"{self.agent.name} refused: {refused}", code="AGENT_UNREACHABLE"))
            client_type, config_type = await sdk()
            auth = self.agent.auth_header or "Authorization"
            # The endpoint discovery found (the client tries /mcp and /mcp/ under a base URL).
            config = config_type(id=self.agent.sales_agent_id, agent_uri=self.agent.endpoint_url or self.agent.agent_url,
                                 protocol=self.agent.protocol.value.lower() if self.agent.protocol.value != "UNKNOWN" else "mcp",
                                 auth_token=self._secrets.auth_token, auth_type="bearer" if auth == "Authorization" else "token",
                                 auth_header=auth, timeout=self._timeout, extra_headers=dict(self._secrets.headers),
                                 max_response_bytes=MAX_ANSWER_BYTES)
            # The version discovery negotiated: without it the client dumps the agent's whole
            # capabilities model on every call to negotiate again (~17 % of a worker's CPU).
            # It also keeps the client from validating the capabilities against its typed model
            # before other calls: real agents' capabilities often miss fields it requires.
            pinned = {"server_version": self._pinned} if self._pinned else {}
            self._client = client_type(config, validation=_no_schema_checks(), **pinned)
            # Its OpenTelemetry hook parses every request body twice to find a trace context we
            # never set (~15 % of a worker's CPU on 100-creative calls): off.
            self._client.adapter.tracing_request_hook = None
        return self._client

    @property
    def endpoint(self) -> str | None:
        """The URL the client reached the agent at (after its /mcp, /mcp/ fallbacks), if connected."""
        if self._client is None:
            return None
        return getattr(self._client.adapter, "_connected_url", None) or self.agent.endpoint_url or self.agent.agent_url

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.close()
            except Exception:  # closing a broken connection: nothing left to do
                log.debug("closing the client of %s failed", self.agent.sales_agent_id, exc_info=True)

    async def call(self, tool: str, params: Mapping[str, Any]) -> dict[str, Any]:
        await sdk()  # loading the SDK is not the agent's time
        try:
            return await asyncio.wait_for(self._call(tool, dict(params)), self._timeout)
        except CallError:
            # A failed call may have left the session broken (an agent restarted on the same port
            # forgets our MCP session, and answers every call on it with a failure): the next call
            # connects afresh.
            await self.close()
            raise
        except asyncio.TimeoutError:
            await self.close()
            raise CallError(CallFailure(f"{self.agent.name} did not answer {tool} within {self._timeout:g} s",
                                        code="AGENT_TIMEOUT")) from None
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled
            # The MCP client lets a cancel scope of its own escape as CancelledError when it cannot
            # connect (a closed port): that ended the agent's supervisor, which never recorded the
            # failure. It is the agent's failure, not ours.
            await self.close()
            address = self.agent.endpoint_url or self.agent.agent_url
            raise CallError(CallFailure(f"{self.agent.name} unreachable: could not connect to {address}",
                                        code="AGENT_UNREACHABLE")) from None
        except Exception as exc:  # the SDK raises many types for an unreachable or broken agent
            await self.close()
            raise CallError(CallFailure(f"{self.agent.name} unreachable: {_transport_failure(exc)}",
                                        code="AGENT_UNREACHABLE")) from None

    async def _call(self, tool: str, params: dict[str, Any]) -> dict[str, Any]:
        client = await self._connected()
        result = await getattr(client.adapter, tool)(params)
        data = result.data if isinstance(result.data, Mapping) else {}
        task_id = data.get("task_id") or getattr(result, "task_id", None)
        if (getattr(result, "submitted", None) or data.get("status") == "submitted") and task_id:
            return await self._follow(client, str(task_id))
        return self._body(tool, result, data)

    async def _follow(self, client: Any, task_id: str) -> dict[str, Any]:
        """A `submitted` answer: poll get_task_status until the task completes or fails."""
        while True:
            await asyncio.sleep(self._poll)
            status = await client.adapter.get_task_status({"task_id": task_id})
            data = status.data if isinstance(status.data, Mapping) else {}
            state = str(data.get("status") or "")
            if state == "completed":
                return dict(data.get("result") or {})
            if state in ("failed", "canceled", "rejected"):
                error = data.get("error") or {}
                raise CallError(failure_from_errors([error] if error else [], default="terminal"))

    def _body(self, tool: str, result: Any, data: Mapping[str, Any]) -> dict[str, Any]:
        if result.success and not (data.get("errors") and not data.get("creatives") and not data.get("formats")):
            return dict(data)
        errors = data.get("errors") if isinstance(data.get("errors"), list) else []
        if not errors and getattr(result, "adcp_error", None):
            error = result.adcp_error
            errors = [error if isinstance(error, Mapping) else getattr(error, "model_dump", lambda **_: {})(mode="json")]
        failure = failure_from_errors(errors) if errors else CallFailure(
            f"{self.agent.name} failed {tool}: {_first_line(result.error or result.message or 'no answer')}")
        raise CallError(failure)


def _transport_failure(exc: BaseException) -> str:
    """What went wrong reaching an agent, in our words: the exception's type, the HTTP status, and
    our own refusal (outbound policy); never text the target sent, which could be anything a
    mistaken or hostile URL points at."""
    chain = _causes(exc)
    for error in chain:
        if "refused: " in str(error) and "not an allowed target" in str(error):
            return _first_line(str(error)[str(error).index("refused: "):])
    for error in chain:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if isinstance(status, int):
            return f"HTTP {status} ({type(error).__name__})"
    if any(isinstance(e, (ConnectionError, OSError)) or "Connect" in type(e).__name__ for e in chain):
        return f"could not connect ({type(exc).__name__})"
    return type(exc).__name__


def _causes(exc: BaseException, limit: int = 12) -> list[BaseException]:
    """`exc`, its causes and contexts, and the members of exception groups (anyio wraps the MCP
    client's failures in them), breadth first."""
    found, queue = [], [exc]
    while queue and len(found) < limit:
        error = queue.pop(0)
        if error in found:
            continue
        found.append(error)
        queue.extend(getattr(error, "exceptions", ()) or ())
        queue.extend(e for e in (error.__cause__, error.__context__) if e is not None)
    return found


def _first_line(value: Any) -> str:
    return str(value).strip().splitlines()[0][:300] if str(value).strip() else type(value).__name__


async def discover(client: AgentClient, ours: tuple[str, ...]) -> dict[str, Any]:
    """What an agent says about itself: its AdCP versions (and the one we speak with it, and why)
    and its formats, asked for in that version (raises CallError)."""
    started = time.perf_counter()
    capabilities = await client.call("get_adcp_capabilities", {})
    versions, negotiated, reason = choose_version(ours, capabilities.get("adcp") or {})
    await client.pin(negotiated)
    formats = await client.call("list_creative_formats", {})
    return {"formats": formats.get("formats") or [], "capabilities": capabilities, "versions": versions,
            "negotiated": negotiated, "version_reason": reason, "took_s": time.perf_counter() - started}
