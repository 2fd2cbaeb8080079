"""`creative-sync sim-agents`: simulated AdCP sales agents on loopback, for the demo, the benchmark
and the tests. Each is a real AdCP server (MCP at /mcp, REST at /api/v1/, both from the gateway's
operation registry) with its own formats and review behaviour: auto-approve, review after a delay,
reject by rule, flaky, slow, or down; one may speak only AdCP 3.1 (legacy `format_id`).

Approvals are left to polling here (`list_creatives` shows each creative's status).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from creative_sync.settings import Settings
from gateway import keys, mcp, middleware, rest
from gateway.auth import Principal
from gateway.errors import AdcpErrors, AdcpRequestError
from gateway.operations import Call, Operation, Registry
from gateway.webhooks import hmac_headers
from streams.library.formats import FORMATS, STANDARD_AGENT_URL
from streams.library.requests import RequestRejected, parse_sync_request
from streams.matching.logic import AgentFormats, match, traits_of


@dataclass(frozen=True)
class Behaviour:
    review: str = "auto"  # auto | delayed | manual
    review_delay_s: float = 2.0
    min_width: int | None = None  # reject images narrower than this, with a reason
    error_rate: float = 0.0  # share of calls answered with a transient error (flaky)
    latency_s: float = 0.0  # added to every call (slow)
    down: bool = False  # every call is a 503


@dataclass(frozen=True)
class SimAgentConfig:
    agent_id: str
    name: str
    format_kinds: tuple[str, ...] = ("image", "html5")
    versions: tuple[str, ...] = ("3.0", "3.1", "3.2")
    behaviour: Behaviour = Behaviour()

    @property
    def formats(self) -> AgentFormats:
        return AgentFormats(self.name, format_kinds=frozenset(self.format_kinds))

    @property
    def legacy_only(self) -> bool:
        return "3.2" not in self.versions


@dataclass
class SimCreative:
    creative: dict[str, Any]
    status: str
    received_at: datetime
    updated_at: datetime
    rejection_reason: str | None = None
    review_due: float | None = None


@dataclass
class SimAgent:
    """One simulated sales agent's state and behaviour (no I/O: the aiohttp app below serves it)."""

    config: SimAgentConfig
    creatives: dict[tuple[str, str], SimCreative] = field(default_factory=dict)  # (account, creative id)
    answers: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # idempotency key -> (hash, answer)
    received: list[tuple[str, str, str]] = field(default_factory=list)  # (account, creative id, idempotency key)
    received_at: list[float] = field(default_factory=list)  # time.time() of each entry of `received`
    clock: Any = time.monotonic
    #: (url, secret): push review decisions as creative.status_changed webhooks signed with
    #: HMAC-SHA256; None leaves them to polling
    notify: tuple[str, str] | None = None
    outbox: list[dict[str, Any]] = field(default_factory=list)  # webhooks still to send

    def capabilities(self) -> dict[str, Any]:
        return {"adcp": {"major_versions": [3], "supported_versions": list(self.config.versions),
                         "idempotency": {"supported": True, "replay_ttl_seconds": 86400}},
                "supported_protocols": ["media_buy", "creative"],
                "creative": {"has_creative_library": False, "supports_compliance": False}}

    def formats(self) -> list[dict[str, Any]]:
        return [f.as_adcp(STANDARD_AGENT_URL) for f in FORMATS if f.kind in self.config.format_kinds]

    def sync(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        if self.config.legacy_only and any("format_kind" in c for c in params.get("creatives") or []):
            raise AdcpRequestError(400, "VALIDATION_ERROR", "This agent speaks AdCP 3.1: send format_id, not format_kind.",
                                   field="creatives", recovery="correctable")
        try:
            request = parse_sync_request(params)
        except RequestRejected as rejected:
            raise AdcpErrors(400, [p.as_adcp() for p in rejected.problems]) from None
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        if request.idempotency_key in self.answers:
            seen_digest, answer = self.answers[request.idempotency_key]
            if seen_digest != digest:
                raise AdcpRequestError(409, "IDEMPOTENCY_CONFLICT", "idempotency_key reused with another payload.",
                                       field="idempotency_key")
            return {**answer, "replayed": True}
        results = []
        for index, creative in enumerate(request.creatives):
            creative_id = str(creative["creative_id"])
            self.received.append((request.account_id, creative_id, request.idempotency_key))
            self.received_at.append(time.time())
            if index in request.invalid:
                results.append({"creative_id": creative_id, "action": "failed",
                                "errors": [p.as_adcp() for p in request.invalid[index]]})
                continue
            verdict = match(traits_of(creative), self.config.formats)
            if not verdict.compatible:
                results.append({"creative_id": creative_id, "action": "failed", "errors": [
                    {"code": "CREATIVE_VALIDATION_FAILED_GENERIC", "message": verdict.reason, "recovery": "terminal"}]})
                continue
            key = (request.account_id, creative_id)
            status, reason, due = self._review(creative)
            previous = self.creatives.get(key)
            action = "created" if previous is None else ("unchanged" if previous.creative == creative else "updated")
            if action != "unchanged":
                self.creatives[key] = SimCreative(creative, status, now, now, reason, due)
            item = {"creative_id": creative_id, "action": action, "status": self.creatives[key].status}
            if self.creatives[key].rejection_reason:  # 3.2 has no reason field here: warnings carry it
                item["warnings"] = [self.creatives[key].rejection_reason]
            results.append(item)
        answer = {"creatives": results}
        self.answers[request.idempotency_key] = (digest, answer)
        return answer

    def _review(self, creative: dict[str, Any]) -> tuple[str, str | None, float | None]:
        behaviour = self.config.behaviour
        width = traits_of(creative).width
        if behaviour.min_width and width is not None and width < behaviour.min_width:
            return "rejected", f"Image width {width}px is below the {behaviour.min_width}px minimum", None
        if behaviour.review == "auto":
            return "approved", None, None
        due = self.clock() + behaviour.review_delay_s if behaviour.review == "delayed" else None
        return "pending_review", None, due

    def _review_if_due(self, account_id: str, creative_id: str, row: SimCreative, now: datetime) -> None:
        if row.review_due is not None and self.clock() >= row.review_due:
            row.review_due = None
            self.decide(account_id, creative_id, "approved", None, now)

    def review_due_ones(self, now: datetime) -> None:
        for (account_id, creative_id), row in self.creatives.items():
            self._review_if_due(account_id, creative_id, row, now)

    def decide(self, account_id: str, creative_id: str, status: str, reason: str | None, now: datetime) -> None:
        """A reviewer's decision: the status changes and, with webhooks, a signed notification goes out."""
        row = self.creatives[(account_id, creative_id)]
        previous, row.status, row.rejection_reason, row.updated_at = row.status, status, reason, now
        if self.notify is not None and previous != status:
            payload = {"idempotency_key": str(uuid.uuid4()), "notification_id": f"{creative_id}-{status}-{now.timestamp()}",
                       "notification_type": "creative.status_changed", "fired_at": now.isoformat(),
                       "subscriber_id": "creative-sync", "account_id": account_id, "creative_id": creative_id,
                       "transition": {"from": previous if previous in ("processing", "pending_review", "approved", "suspended")
                                      else "pending_review", "to": status, "observed_at": now.isoformat()},
                       "reason_code": "review_passed" if status == "approved" else "review_failure",
                       "initiator": "seller"}
            if reason:
                payload["reason_detail"] = reason
            self.outbox.append(payload)

    def list(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        account = (params.get("account") or {}).get("account_id")
        filters = params.get("filters") or {}
        wanted = set(filters.get("creative_ids") or [])
        after = filters.get("updated_after")
        rows = []
        for (account_id, creative_id), row in self.creatives.items():
            self._review_if_due(account_id, creative_id, row, now)
            if (account and account_id != account) or (wanted and creative_id not in wanted):
                continue
            if after and row.updated_at <= datetime.fromisoformat(str(after).replace("Z", "+00:00")):
                continue
            item = {**{k: v for k, v in row.creative.items() if k != "status"}, "status": row.status,
                    "created_date": row.received_at.isoformat(), "updated_date": row.updated_at.isoformat()}
            if row.rejection_reason:
                item["rejection_reason"] = row.rejection_reason
            rows.append(item)
        return {"query_summary": {"total_matching": len(rows), "returned": len(rows)},
                "pagination": {"has_more": False}, "creatives": rows}


class _OneToken:
    """The sim's principal store: one token, any account (a sales agent serves many buyers)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def authenticate(self, token: str | None) -> Principal | None:
        return _AnyAccount("buyer", "buyer", frozenset()) if token == self._token else None


class _AnyAccount(Principal):
    """A buyer of a sales agent: it may act for any account (the agent serves many)."""

    def require_account(self, account_id: str) -> None:
        return None


def create_agent_app(agent: SimAgent, token: str) -> web.Application:
    @web.middleware
    async def behave(request: web.Request, handler):  # noqa: ANN001
        behaviour = agent.config.behaviour  # read per request: a test may take the agent down and back
        if behaviour.latency_s:
            await asyncio.sleep(behaviour.latency_s)
        if behaviour.down or (behaviour.error_rate and random.random() < behaviour.error_rate):
            return web.json_response({"errors": [{"code": "SERVICE_UNAVAILABLE", "message": "Simulated outage.",
                                                  "recovery": "transient", "retry_after": 1}]}, status=503)
        return await handler(request)

    def operation(name: str, summary: str, answer) -> Operation:  # noqa: ANN001
        async def handler(call: Call) -> dict[str, Any]:
            return answer(call.params, datetime.now(UTC))
        return Operation(name, summary, {"type": "object"}, handler)

    app = web.Application(middlewares=[behave, middleware.errors, middleware.authenticate])
    app[keys.SETTINGS] = Settings()
    app[keys.PRINCIPALS] = _OneToken(token)  # type: ignore[assignment] - duck-typed store
    app[keys.OPERATIONS] = Registry([
        operation("get_adcp_capabilities", "Capabilities", lambda p, now: agent.capabilities()),
        operation("list_creative_formats", "Formats", lambda p, now: {"formats": agent.formats()}),
        operation("sync_creatives", "Receive creatives for review", agent.sync),
        operation("list_creatives", "Review status of received creatives", agent.list),
    ])
    app[keys.MCP_SESSIONS] = mcp.Sessions(3600)
    app[keys.VERSION] = "sim"
    app.add_routes(mcp.routes)
    app.add_routes(rest.routes)
    app.cleanup_ctx.append(_reviews_and_webhooks(agent))
    return app


def _reviews_and_webhooks(agent: SimAgent):  # noqa: ANN202
    """Delayed reviews come due on their own, and their webhooks go out signed, retried on failure."""
    async def owned(app: web.Application):  # noqa: ANN202
        async def run() -> None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                while True:
                    agent.review_due_ones(datetime.now(UTC))
                    while agent.notify and agent.outbox:
                        url, secret = agent.notify
                        body = json.dumps(agent.outbox[0]).encode()
                        try:
                            async with session.post(url, data=body, headers={
                                    "Content-Type": "application/json", **hmac_headers(secret, body)}) as response:
                                if response.status >= 500:
                                    break  # retried on the next round
                        except (aiohttp.ClientError, asyncio.TimeoutError):
                            break
                        agent.outbox.pop(0)
                    await asyncio.sleep(0.2)

        task = asyncio.create_task(run())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return owned


DEMO_AGENTS = (
    SimAgentConfig("display-news", "Daily News (display)", ("image", "html5")),
    SimAgentConfig("video-stream", "StreamCo (video)", ("video_hosted", "video_vast"),
                   behaviour=Behaviour(review="delayed", review_delay_s=5)),
    SimAgentConfig("legacy-portal", "Old Portal (AdCP 3.1)", ("image",), versions=("3.0", "3.1"),
                   behaviour=Behaviour(min_width=300)),
)


#: served over A2A (the others over MCP), on the port after theirs
A2A_DEMO_AGENT = SimAgentConfig("a2a-gazette", "Gazette (A2A)", ("image", "html5"))


async def serve_a2a_agent(config: SimAgentConfig, host: str, port: int, token: str) -> tuple[Any, asyncio.Task]:
    """Start `config` over A2A under uvicorn; the framework loads in a thread, the others keep serving."""
    import uvicorn

    app = await asyncio.to_thread(create_a2a_agent_app, SimAgent(config), token, port)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    return server, asyncio.create_task(server.serve())


async def serve_agents(configs: tuple[SimAgentConfig, ...], host: str, first_port: int, token: str) -> list[str]:
    """Start one HTTP server per agent on consecutive ports; returns their MCP URLs."""
    urls = []
    for offset, config in enumerate(configs):
        runner = web.AppRunner(create_agent_app(SimAgent(config), token))
        await runner.setup()
        port = first_port + offset
        await web.TCPSite(runner, host, port).start()
        urls.append(f"http://{host}:{port}/mcp")
    return urls


def run_sim_agents(host: str = "127.0.0.1", first_port: int = 9100, token: str | None = None) -> int:
    import secrets
    import signal

    token = token or secrets.token_urlsafe(24)

    async def main() -> None:
        urls = await serve_agents(DEMO_AGENTS, host, first_port, token)
        for config, url in zip(DEMO_AGENTS, urls):
            print(f"  {config.name:28} {url}   AdCP {', '.join(config.versions)}   formats {', '.join(config.format_kinds)}")
        a2a_port = first_port + len(DEMO_AGENTS)
        print(f"  {A2A_DEMO_AGENT.name:28} http://{host}:{a2a_port}   (A2A, starting: the adcp server framework loads)")
        print(f"  token: {token}   (Ctrl-C stops them)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        a2a = asyncio.create_task(serve_a2a_agent(A2A_DEMO_AGENT, host, a2a_port, token))
        await stop.wait()
        if a2a.done() and not a2a.exception():
            server, task = a2a.result()
            server.should_exit = True
            await task

    asyncio.run(main())
    return 0


def create_a2a_agent_app(agent: SimAgent, token: str, port: int) -> Any:
    """The same simulated agent over A2A, served by the official adcp server framework (a Starlette
    app: run it with uvicorn). Importing adcp.server builds the SDK's type graph (~20 s of CPU),
    so only A2A agents pay for it."""
    from adcp.server import ADCPHandler
    from adcp.server.a2a_server import create_a2a_server
    from adcp.server.auth import BearerTokenAuth, Principal as A2APrincipal, validator_from_token_map

    def plain(params: Any) -> dict[str, Any]:
        return params.model_dump(mode="json", exclude_none=True) if hasattr(params, "model_dump") else dict(params or {})

    def answer(operation, params: Any) -> dict[str, Any]:  # noqa: ANN001
        behaviour = agent.config.behaviour
        if behaviour.down or (behaviour.error_rate and random.random() < behaviour.error_rate):
            return {"errors": [{"code": "SERVICE_UNAVAILABLE", "message": "Simulated outage.", "recovery": "transient"}]}
        try:
            return operation(plain(params), datetime.now(UTC))
        except AdcpRequestError as error:
            return error.body()

    class SimHandler(ADCPHandler):
        advertised_tools = {"get_adcp_capabilities", "list_creative_formats", "sync_creatives", "list_creatives"}

        async def get_adcp_capabilities(self, params: Any, context: Any = None) -> Any:
            return agent.capabilities()

        async def list_creative_formats_legacy(self, params: Any, context: Any = None) -> Any:  # the tool list_creative_formats
            return {"formats": agent.formats()}

        async def sync_creatives(self, params: Any, context: Any = None) -> Any:
            if agent.config.behaviour.latency_s:
                await asyncio.sleep(agent.config.behaviour.latency_s)
            return answer(agent.sync, params)

        async def list_creatives(self, params: Any, context: Any = None) -> Any:
            return answer(agent.list, params)

    auth = BearerTokenAuth(validate_token=validator_from_token_map({token: A2APrincipal(caller_identity="buyer")}))
    return create_a2a_server(SimHandler(), name=agent.config.name, port=port, validation=None, auth=auth,
                             public_url=f"http://127.0.0.1:{port}")
