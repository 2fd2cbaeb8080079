"""MCP over streamable HTTP at `/mcp`: JSON-RPC 2.0 with JSON responses, tools generated from the
operation registry.

Written by hand on purpose: the MCP SDK's server runs on Starlette/ASGI, and the gateway is one
aiohttp app (fixed stack); the part of MCP a tool server needs (initialize, tools/list,
tools/call, ping, sessions) is small and tested here against the official clients.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from gateway import keys
from gateway.errors import AdcpRequestError
from gateway.middleware import PRINCIPAL, request_id_of
from gateway.validation import parse_body

PROTOCOL_VERSIONS = ("2025-06-18", "2025-03-26", "2024-11-05")
BATCH_VERSIONS = ("2025-03-26",)
SESSION_HEADER = "Mcp-Session-Id"
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603

routes = web.RouteTableDef()
log = logging.getLogger(__name__)


@dataclass
class Session:
    session_id: str
    principal_id: str
    protocol_version: str
    last_seen: float


class Sessions:
    """Sessions expire after `ttl_s` without a request; a session belongs to the principal that opened it."""

    def __init__(self, ttl_s: float, clock=time.monotonic) -> None:  # noqa: ANN001
        self.ttl_s, self._clock = ttl_s, clock
        self._sessions: dict[str, Session] = {}
        self.opened = 0  # sessions opened since the start (what a client's reconnections cost us)

    def open(self, principal_id: str, protocol_version: str) -> Session:
        self._expire()
        self.opened += 1
        session = Session(secrets.token_urlsafe(24), principal_id, protocol_version, self._clock())
        self._sessions[session.session_id] = session
        return session

    def find(self, session_id: str, principal_id: str) -> Session | None:
        self._expire()
        session = self._sessions.get(session_id)
        if session is None or session.principal_id != principal_id:
            return None
        session.last_seen = self._clock()
        return session

    def close(self, session_id: str, principal_id: str) -> bool:
        if self.find(session_id, principal_id) is None:
            return False
        del self._sessions[session_id]
        return True

    def _expire(self) -> None:
        cutoff = self._clock() - self.ttl_s
        for session_id in [s.session_id for s in self._sessions.values() if s.last_seen < cutoff]:
            del self._sessions[session_id]


def _result(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def tool_result(body: dict[str, Any], *, is_error: bool) -> dict[str, Any]:
    """AdCP over MCP: the flat AdCP response (envelope fields beside the payload) in
    structuredContent, the same JSON as text; a failed task with isError and its `adcp_error`."""
    return {"content": [{"type": "text", "text": json.dumps(body, separators=(",", ":"))}],
            "structuredContent": body, "isError": is_error}


@routes.get("/mcp")
async def no_stream(request: web.Request) -> web.Response:
    # No server-initiated stream: every answer is the JSON response to its POST.
    return web.json_response(_error(None, INVALID_REQUEST, "GET is not supported: POST JSON-RPC messages."),
                             status=405, headers={"Allow": "POST, DELETE"})


@routes.delete("/mcp")
async def end_session(request: web.Request) -> web.Response:
    sessions = request.app[keys.MCP_SESSIONS]
    closed = sessions.close(request.headers.get(SESSION_HEADER, ""), request[PRINCIPAL].principal_id)
    return web.Response(status=200 if closed else 404)


@routes.post("/mcp")
async def rpc(request: web.Request) -> web.StreamResponse:
    """One JSON-RPC message; whatever goes wrong, the answer is JSON-RPC (tool failures are tool
    results with isError, an unexpected failure here an internal error with the request id)."""
    try:
        return await _rpc(request)
    except (AdcpRequestError, ConnectionError):  # a client gone mid-request: aiohttp drops it quietly
        raise
    except Exception:
        log.exception("MCP request failed unexpectedly (request %s)", request_id_of(request))
        return web.json_response(_error(None, INTERNAL_ERROR, f"Internal error (request id {request_id_of(request)})."),
                                 status=500)


def _foreign_origin(request: web.Request) -> str | None:
    """A browser page of another site calling us (DNS rebinding): the MCP spec has servers check
    Origin. Non-browser clients send none."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin
    return None if urlsplit(origin).netloc == request.host else origin


async def _rpc(request: web.Request) -> web.StreamResponse:
    if (origin := _foreign_origin(request)) is not None:
        return web.json_response(_error(None, INVALID_REQUEST, f"Origin {origin!r} may not call this server."), status=403)
    try:
        message = parse_body(await request.read())
    except AdcpRequestError as error:
        return web.json_response(_error(None, PARSE_ERROR, error.message), status=400)
    if isinstance(message, list):
        return await _batch(request, message)
    status, answer, headers = await _one(request, message)
    if answer is None:
        return web.Response(status=status)
    return web.json_response(answer, status=status, headers=headers)


async def _batch(request: web.Request, messages: list[Any]) -> web.Response:
    """JSON-RPC batches: part of MCP 2025-03-26 (servers MUST accept them), removed in 2025-06-18.
    A batch runs in an existing session, whose negotiated version decides."""
    session = request.app[keys.MCP_SESSIONS].find(request.headers.get(SESSION_HEADER, ""), request[PRINCIPAL].principal_id)
    if session is None or session.protocol_version not in BATCH_VERSIONS:
        return web.json_response(_error(None, INVALID_REQUEST, "JSON-RPC batches are accepted in a session of MCP "
                                        f"{', '.join(BATCH_VERSIONS)} only; send one message per request."), status=400)
    if not messages or any(isinstance(m, dict) and m.get("method") == "initialize" for m in messages):
        return web.json_response(_error(None, INVALID_REQUEST, "A batch holds at least one message and no initialize."),
                                 status=400)
    answers = [answer for _, answer, _ in [await _one(request, m) for m in messages] if answer is not None]
    return web.json_response(answers) if answers else web.Response(status=202)


async def _one(request: web.Request, message: Any) -> tuple[int, dict[str, Any] | None, dict[str, str] | None]:
    """One JSON-RPC message: (HTTP status, JSON-RPC answer or None for none, headers)."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or not isinstance(message.get("method", ""), str):
        return 400, _error(None, INVALID_REQUEST, "Expected a JSON-RPC 2.0 message."), None
    if "method" not in message:  # a response to a server request: we never send any
        return 202, None, None
    principal = request[PRINCIPAL]
    sessions = request.app[keys.MCP_SESSIONS]
    method, request_id, params = message["method"], message.get("id"), message.get("params") or {}
    if not isinstance(params, dict):
        return 400, _error(request_id, INVALID_PARAMS, "params must be an object."), None

    if method == "initialize":
        asked = str(params.get("protocolVersion") or PROTOCOL_VERSIONS[0])
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        session = sessions.open(principal.principal_id, version)
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "creative-sync", "version": request.app[keys.VERSION]},
            "instructions": "AdCP creative library and sync orchestration. Every tool answers an AdCP response.",
        }
        return 200, _result(request_id, result), {SESSION_HEADER: session.session_id}

    version_header = request.headers.get("MCP-Protocol-Version")
    if version_header is not None and version_header not in PROTOCOL_VERSIONS:  # the spec: 400 Bad Request
        return 400, _error(request_id, INVALID_REQUEST, f"Unsupported MCP-Protocol-Version {version_header!r}; "
                           f"this server speaks {', '.join(PROTOCOL_VERSIONS)}."), None
    session_id = request.headers.get(SESSION_HEADER)
    if not session_id or sessions.find(session_id, principal.principal_id) is None:
        # Per the spec: an unknown or expired session is a 404, and the client starts a new one.
        return (404 if session_id else 400), _error(request_id, INVALID_REQUEST,
                                                    "Unknown or expired MCP session: initialize again."), None
    if request_id is None:  # a notification (notifications/initialized, cancelled...): accepted, no answer
        return 202, None, None
    if method == "ping":
        return 200, _result(request_id, {}), None
    if method == "tools/list":
        tools = [{"name": op.name, "description": op.summary, "inputSchema": op.discovery_schema}
                 for op in request.app[keys.OPERATIONS]]
        return 200, _result(request_id, {"tools": tools}), None
    if method == "tools/call":
        if request.app[keys.OPERATIONS].get(str(params.get("name"))) is None:  # a protocol error, per the MCP spec
            return 200, _error(request_id, INVALID_PARAMS, f"Unknown tool: {params.get('name')!r}"), None
        return 200, _result(request_id, await _call_tool(request, params)), None
    return 200, _error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}"), None


async def _call_tool(request: web.Request, params: dict[str, Any]) -> dict[str, Any]:
    operation = request.app[keys.OPERATIONS].get(str(params.get("name")))
    arguments = params.get("arguments")
    try:
        body = await operation.invoke(request.app, request[PRINCIPAL], {} if arguments is None else arguments,
                                      request_id_of(request))
    except AdcpRequestError as error:
        return tool_result(error.body(), is_error=True)
    return tool_result(body, is_error=False)
