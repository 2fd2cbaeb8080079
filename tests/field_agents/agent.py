"""A sales agent as they exist in the field, for the interop tests: built on the official adcp
server framework (`adcp.server.create_mcp_server`), sharing no code with creative-sync, and
configurable with the behaviours seen in real agents (the prebid reference salesagent and others):
a multi-megabyte tool list, MCP only at `/mcp/`, legacy formats listed with a trailing-slash
agent_url and no kinds, a major-only version, a skewed clock, answers without per-creative
status, list filters ignored, idempotency keys dropped, a required tenant header, webhooks pushed
or not.

It keeps what it received (`/_field/received`) so that a test can check that only ids it listed
ever reached it, and takes review decisions from the test (`/_field/decide`).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger("field_agent")

REFERENCE_CREATIVE_AGENT = "https://creative.adcontextprotocol.org/"


@dataclass
class FieldAgentConfig:
    name: str = "Field Agent"
    token: str = "field-agent-token"
    port: int = 0
    #: "/mcp/" serves MCP only with the trailing slash ("/mcp" is 404), like FastMCP mounts often do
    mcp_path: str = "/mcp/"
    #: the whole tools/list answer is padded to at least this many bytes (0: no padding)
    tools_list_bytes: int = 0
    #: format ids listed under `format_agent_url`, each without kind (the agent's own ids)
    format_ids: tuple[str, ...] = ("display_300x250_image", "display_728x90_image")
    format_agent_url: str = REFERENCE_CREATIVE_AGENT
    #: {"major_versions": [3]} alone, or a full supported_versions list
    major_only: bool = True
    supported_versions: tuple[str, ...] = ("3.0", "3.1")
    clock_skew_s: float = 0.0
    status_in_answers: bool = False
    honour_creative_ids_filter: bool = False
    honour_idempotency: bool = False
    #: an existing creative sent again answers `failed` with CREATIVE_ALREADY_EXISTS (else: updated)
    existing_is_error: bool = False
    #: the first N sync_creatives calls are applied, then answered with a transient error (the answer is lost)
    lose_answers: int = 0
    tenant_header: str | None = None  # e.g. "x-adcp-tenant"
    tenant: str | None = None
    webhooks: bool = False  # declares webhook support and pushes review decisions to push_notification_config
    #: seconds after a sync before the agent reviews a creative (None: only the test decides)
    review_after_s: float | None = 0.5
    reject_if_name_contains: str = "reject"
    page_size: int = 50


@dataclass
class Held:
    account_id: str
    creative: dict[str, Any]
    status: str
    updated: datetime
    reason: str | None = None
    push: dict[str, Any] | None = None
    content: str = ""


class FieldAgent:
    """The agent's state and behaviour; served by `serve`."""

    def __init__(self, config: FieldAgentConfig) -> None:
        self.config = config
        self.creatives: dict[tuple[str, str], Held] = {}
        self.received: list[dict[str, Any]] = []  # one row per creative per sync call
        self.answers: dict[str, Any] = {}
        self.calls: dict[str, int] = {}
        self.headers_seen: list[dict[str, str]] = []
        self._sync_calls = 0
        self._raw: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task] = set()

    def remember_raw(self, body: bytes) -> None:
        """The sync_creatives arguments as they came on the wire: the framework hands handlers its
        canonical (3.2) form of legacy creatives, and this agent, like real legacy agents, reads
        what was sent."""
        try:
            message = json.loads(body)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("method") == "tools/call":
            params = message.get("params") or {}
            if params.get("name") == "sync_creatives" and isinstance(params.get("arguments"), dict):
                arguments = params["arguments"]
                self._raw[_batch_key(arguments)] = arguments

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.config.clock_skew_s)

    # -- tools --------------------------------------------------------------------------------
    def capabilities(self) -> dict[str, Any]:
        adcp: dict[str, Any] = {"major_versions": [3]}
        if not self.config.major_only:
            adcp["supported_versions"] = list(self.config.supported_versions)
        answer: dict[str, Any] = {"adcp": adcp, "supported_protocols": ["media_buy"]}
        if self.config.webhooks:
            answer["webhook_signing"] = {"supported": True, "profile": "adcp-webhook-v1", "algorithms": ["ed25519"],
                                         "legacy_hmac_fallback": True}
        return answer

    def formats(self) -> dict[str, Any]:
        return {"formats": [{"format_id": {"agent_url": self.config.format_agent_url, "id": format_id},
                             "name": format_id.replace("_", " ")} for format_id in self.config.format_ids]}

    def sync(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls["sync_creatives"] = self.calls.get("sync_creatives", 0) + 1
        params = self._raw.pop(_batch_key(params), params)
        key = params.get("idempotency_key")
        if self.config.honour_idempotency and key in self.answers:
            return self.answers[key]
        account_id = str((params.get("account") or {}).get("account_id") or "default")
        push = params.get("push_notification_config") if self.config.webhooks else None
        answers = []
        for creative in params.get("creatives") or []:
            creative_id = str(creative.get("creative_id"))
            format_id = creative.get("format_id") if isinstance(creative.get("format_id"), dict) else None
            self.received.append({"account_id": account_id, "creative_id": creative_id, "format_id": format_id,
                                  "format_kind": creative.get("format_kind"), "idempotency_key": key})
            listed = format_id is not None and format_id.get("agent_url") == self.config.format_agent_url \
                and format_id.get("id") in self.config.format_ids
            if not listed:
                answers.append({"creative_id": creative_id, "action": "failed", "errors": [
                    {"code": "INVALID_FORMAT", "message": f"Unknown format {format_id or creative.get('format_kind')}"}]})
                continue
            content = json.dumps({k: v for k, v in creative.items() if k not in ("name", "tags")}, sort_keys=True)
            existing = self.creatives.get((account_id, creative_id))
            if existing is not None and self.config.existing_is_error:
                answers.append({"creative_id": creative_id, "action": "failed", "errors": [
                    {"code": "CREATIVE_ALREADY_EXISTS", "message": f"Creative {creative_id} already exists"}]})
                continue
            action = "created" if existing is None else ("unchanged" if existing.content == content else "updated")
            held = Held(account_id, creative, "pending_review", self.now(), push=push, content=content)
            if existing is not None and existing.content == content:
                held = existing
            self.creatives[(account_id, creative_id)] = held
            if held is not existing:
                self._review_later(account_id, creative_id)
            answer = {"creative_id": creative_id, "action": action}
            if self.config.status_in_answers:
                answer["status"] = held.status
            answers.append(answer)
        result = {"creatives": answers}
        self._sync_calls += 1
        if self._sync_calls <= self.config.lose_answers:
            # Applied, but the buyer never learns it: it sees a failure and retries.
            return {"errors": [{"code": "SERVICE_UNAVAILABLE", "message": "upstream timeout", "recovery": "transient"}]}
        if self.config.honour_idempotency and key:
            self.answers[key] = result
        return result

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls["list_creatives"] = self.calls.get("list_creatives", 0) + 1
        filters = params.get("filters") or {}
        wanted = set(filters.get("creative_ids") or []) if self.config.honour_creative_ids_filter else None
        # Every account's creatives: like the reference agent, this one ignores `account` too.
        rows = [(key, held) for key, held in sorted(self.creatives.items()) if wanted is None or key[1] in wanted]
        pagination = params.get("pagination") or {}
        start = int(pagination.get("cursor") or 0)
        page = rows[start:start + self.config.page_size]
        more = start + len(page) < len(rows)
        items = []
        for (account_id, creative_id), held in page:
            item = {"creative_id": creative_id, "name": held.creative.get("name"), "status": held.status,
                    "account": {"account_id": account_id}, "updated_date": held.updated.isoformat(),
                    "created_date": held.updated.isoformat()}
            if held.reason:
                item["rejection_reason"] = held.reason
            items.append(item)
        return {"creatives": items, "pagination": {"has_more": more, **({"cursor": str(start + len(page))} if more else {})},
                "query_summary": {"total_matching": len(rows), "returned": len(items)}}

    # -- reviews ------------------------------------------------------------------------------
    def _review_later(self, account_id: str, creative_id: str) -> None:
        if self.config.review_after_s is None:
            return

        async def review() -> None:
            await asyncio.sleep(self.config.review_after_s)
            held = self.creatives.get((account_id, creative_id))
            if held is None or held.status != "pending_review":
                return
            rejected = self.config.reject_if_name_contains in str(held.creative.get("name", "")).lower()
            await self.decide(account_id, creative_id, "rejected" if rejected else "approved",
                              "Brand safety: not accepted here" if rejected else None)

        task = asyncio.get_running_loop().create_task(review())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def decide(self, account_id: str, creative_id: str, status: str, reason: str | None) -> bool:
        held = self.creatives.get((account_id, creative_id))
        if held is None:
            return False
        before = held.status
        held.status, held.reason, held.updated = status, reason, self.now()
        if held.push and held.push.get("url"):
            await self._push(held.push, account_id, creative_id, before, held)
        return True

    async def _push(self, push: dict[str, Any], account_id: str, creative_id: str, before: str, held: Held) -> None:
        """A `creative.status_changed` notification, signed with the legacy HMAC-SHA256 scheme
        under the credentials the buyer gave in push_notification_config."""
        import httpx

        fired = self.now()
        payload = {"notification_type": "creative.status_changed",
                   "idempotency_key": hashlib.sha256(f"{account_id}/{creative_id}/{held.status}/{fired}".encode()).hexdigest(),
                   "account_id": account_id, "creative_id": creative_id, "fired_at": fired.isoformat(),
                   "transition": {"from": before, "to": held.status, "observed_at": held.updated.isoformat()},
                   **({"reason_detail": held.reason} if held.reason else {})}
        body = json.dumps(payload).encode()
        secret = str((push.get("authentication") or {}).get("credentials") or "")
        stamp = str(int(fired.timestamp()))
        signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(push["url"], content=body, headers={
                    "content-type": "application/json", "x-adcp-timestamp": stamp, "x-adcp-signature": f"sha256={signature}"})
            self.calls["webhooks_sent"] = self.calls.get("webhooks_sent", 0) + 1
            self.calls[f"webhook_{response.status_code}"] = self.calls.get(f"webhook_{response.status_code}", 0) + 1
        except Exception as exc:  # a lost webhook: the buyer's polling is the fallback
            log.warning("webhook to %s failed: %s", push.get("url"), exc)

    def state(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "received": self.received, "calls": self.calls,
                "headers_seen": self.headers_seen[-20:],
                "creatives": [{"account_id": a, "creative_id": c, "status": h.status, "updated": h.updated.isoformat()}
                              for (a, c), h in self.creatives.items()]}


def _batch_key(arguments: dict[str, Any]) -> str:
    return json.dumps(sorted(str(c.get("creative_id")) for c in arguments.get("creatives") or [] if isinstance(c, dict)))


def build_app(agent: FieldAgent) -> Any:
    """The agent as an ASGI app: adcp's MCP server, behind this agent's path, auth and tenant rules."""
    from adcp.server import ADCPHandler, mcp_sessions
    from adcp.server.serve import create_mcp_server

    _patch_initialize_replay(mcp_sessions)

    class Handler(ADCPHandler):
        advertised_tools = {"get_adcp_capabilities", "list_creative_formats", "sync_creatives", "list_creatives"}

        async def get_adcp_capabilities(self, params: dict[str, Any], context: Any = None) -> Any:
            return agent.capabilities()

        async def list_creative_formats_legacy(self, params: dict[str, Any], context: Any = None) -> Any:
            return agent.formats()

        async def sync_creatives(self, params: dict[str, Any], context: Any = None) -> Any:
            return agent.sync(params)

        async def list_creatives(self, params: dict[str, Any], context: Any = None) -> Any:
            return agent.list(params)

    mcp = create_mcp_server(Handler(), name=agent.config.name, validation=None, streaming_responses=True,
                            enable_dns_rebinding_protection=False)
    if agent.config.tools_list_bytes:
        # Real agents list hundreds of tools with long schemas: one more tool whose description
        # makes the tools/list answer several megabytes.
        def catalogue_lookup(query: str = "") -> dict[str, Any]:
            return {"query": query}

        mcp.add_tool(catalogue_lookup, name="catalogue_lookup",
                     description="Catalogue lookup. " + "lorem ipsum dolor sit amet " * (agent.config.tools_list_bytes // 27 + 1))
    inner = mcp.streamable_http_app()
    config = agent.config

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        path = scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        if path.startswith("/_field/"):
            await _admin(agent, scope, receive, send)
            return
        if path != config.mcp_path:
            await _json(send, 404, {"error": "not found"})
            return
        if headers.get("authorization") != f"Bearer {config.token}":
            await _json(send, 401, {"error": "unauthorized"}, [(b"www-authenticate", b"Bearer")])
            return
        if config.tenant_header and headers.get(config.tenant_header) != config.tenant:
            await _json(send, 400, {"error": f"missing or unknown tenant ({config.tenant_header})"})
            return
        agent.headers_seen.append({k: v for k, v in headers.items() if k.startswith("x-")})
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False) and message["type"] == "http.request"
        agent.remember_raw(body)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await inner({**scope, "path": "/mcp", "raw_path": b"/mcp"}, replay, send)

    return app


async def _json(send: Any, status: int, body: Any, headers: list | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


async def _admin(agent: FieldAgent, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Test-only endpoints (loopback): what the agent received, and review decisions."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/_field/state":
        await _json(send, 200, agent.state())
    elif scope["path"] == "/_field/decide":
        request = json.loads(body or b"{}")
        found = await agent.decide(request["account_id"], request["creative_id"], request["status"], request.get("reason"))
        await _json(send, 200 if found else 404, {"decided": found})
    else:
        await _json(send, 404, {"error": "not found"})


async def serve(configs: list[FieldAgentConfig], ready: Any = None) -> None:
    """Serve every agent on its port until cancelled; `ready()` is called once all listen."""
    import uvicorn

    # uvicorn runs the app's lifespan (FastMCP's session manager), which the wrapper passes on.
    servers = [uvicorn.Server(uvicorn.Config(build_app(FieldAgent(config)), host="127.0.0.1", port=config.port,
                                             log_level="warning", lifespan="on", timeout_keep_alive=30))
               for config in configs]
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    deadline = time.monotonic() + 120
    while not all(s.started for s in servers):
        if time.monotonic() > deadline or any(t.done() for t in tasks):
            raise RuntimeError("a field agent did not start")
        await asyncio.sleep(0.05)
    if ready is not None:
        ready()
    await asyncio.gather(*tasks)


def _patch_initialize_replay(mcp_sessions: Any) -> None:
    """adcp 9.2's session manager replays an `initialize` body through a `receive` that, once the
    body is sent, answers an empty request again at once, forever: sse_starlette's disconnect
    listener then spins at 100 % CPU and the SSE answer never comes. After the body, this one
    waits (the listener is cancelled when the answer is complete), as a real connection does."""
    if getattr(mcp_sessions, "_field_patched", False):
        return

    def replay(body: bytes) -> Any:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return receive

    mcp_sessions._replay_body_receive = replay
    mcp_sessions._field_patched = True
