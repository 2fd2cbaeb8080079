"""A2A at `/a2a` (JSON-RPC, the 1.0 wire and the 0.3 wire that most AdCP clients speak) and its agent
card at `/.well-known/agent-card.json`: the skills are the operation registry's, each run through
`Operation.invoke` exactly as over MCP and REST.

The protocol itself is the a2a-sdk's server (request handler, task lifecycle, JSON-RPC dispatcher,
0.3 compatibility: the same parts the adcp SDK's own A2A server is assembled from), and the AdCP
binding on top of it (one DataPart `{skill, parameters}` in; a task with a DataPart out, a failed
task carrying `adcp_error`) is the adcp SDK's parser and task builder. What is ours is the seam to
aiohttp: the SDK's server is Starlette, the gateway is one aiohttp app (fixed stack), so each POST is
handed to the SDK's dispatcher as a Starlette request and its JSON answer handed back.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from a2a import types as pb
from a2a.auth.user import User
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes.common import ServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.server.tasks import InMemoryTaskStore
from aiohttp import web
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse

from gateway import keys
from gateway.auth import Principal
from gateway.errors import AdcpRequestError
from gateway.middleware import PRINCIPAL, request_id_of
from gateway.operations import Registry
from gateway.validation import parse_body

log = logging.getLogger(__name__)


@functools.cache
def binding() -> tuple[Any, Any]:
    """(parse_invocation, make_task): the adcp SDK's AdCP-over-A2A binding (what its own server uses:
    one unambiguous {skill, parameters} invocation per message, and the task shape its client reads,
    DataPart + TextPart artifact). Imported when first needed, not with the
    gateway: `adcp.server` loads the SDK's whole pydantic type graph (~15 CPU-s here), which made a
    gateway restart cost that much before /readyz. `preload` warms it up after the start."""
    from adcp.server.a2a_server import _default_parse_request, _make_task
    return _default_parse_request, _make_task


async def preload() -> None:
    """Import the binding in a thread once the gateway serves: A2A's first request does not pay it.
    (The import holds the interpreter lock in turns; requests meanwhile are slower, not refused.)"""
    try:
        await asyncio.to_thread(binding)
    except Exception:  # noqa: BLE001 - the first A2A request will import it, and say why if it fails
        log.warning("preloading the adcp A2A binding failed", exc_info=True)


routes = web.RouteTableDef()

RPC_PATH = "/a2a"
CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")  # 1.0, and the 0.3 name
_SCOPE_KEY = "creative_sync.call"
#: Finished A2A tasks kept per principal for tasks/get (the AdCP result is also in get_task_status).
TASKS_KEPT_PER_PRINCIPAL = 200
_STREAMING = frozenset({"message/stream", "SendStreamingMessage", "tasks/resubscribe", "SubscribeToTask"})


class _Caller(User):
    def __init__(self, principal_id: str) -> None:
        self._name = principal_id

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self._name


class _CallContext(ServerCallContextBuilder):
    """The gateway authenticated the request already: its principal (and request id) go to the
    executor, and the principal owns the A2A tasks (tasks/get of another principal's task finds nothing)."""

    def build(self, request: StarletteRequest) -> ServerCallContext:
        principal, request_id = request.scope[_SCOPE_KEY]
        return ServerCallContext(user=_Caller(principal.principal_id),
                                 # the headers as the SDK's own builder keeps them (A2A-Version is read there)
                                 state={"principal": principal, "request_id": request_id,
                                        "headers": dict(request.headers)})


class BoundedTaskStore(InMemoryTaskStore):
    """The SDK's in-memory task store, keeping only each principal's most recent tasks."""

    def __init__(self, per_owner: int = TASKS_KEPT_PER_PRINCIPAL) -> None:
        super().__init__()
        self.per_owner = per_owner

    async def save(self, task: pb.Task, context: ServerCallContext) -> None:
        await super().save(task, context)
        owned = self._impl.tasks.get(self._impl.owner_resolver(context), {})
        while len(owned) > self.per_owner:
            owned.pop(next(iter(owned)))


class RegistryExecutor(AgentExecutor):
    """Runs the skill a message names: `Operation.invoke` (the checks, the handler, AdCP errors)."""

    def __init__(self, registry: Registry, app: web.Application) -> None:
        self.registry, self.app = registry, app

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        state = context.call_context.state
        principal: Principal = state["principal"]
        parse_invocation, make_task = binding()
        try:
            skill, params = parse_invocation(context)
        except ValueError:  # a number JSON cannot carry (protobuf refuses NaN/Infinity)
            skill, params = None, {}
        try:
            if skill is None:
                raise AdcpRequestError(400, "INVALID_REQUEST", "Send one DataPart {\"skill\": <operation>, \"parameters\": "
                                       "{...}} per message.", suggestion="The agent card lists the skills.")
            operation = self.registry.get(skill)
            if operation is None:
                raise AdcpRequestError(400, "UNSUPPORTED_FEATURE", f"Unknown skill {skill!r}.", field="skill",
                                       suggestion="The agent card (/.well-known/agent-card.json) lists the skills.")
            body = await operation.invoke(self.app, principal, params, state["request_id"])
        except AdcpRequestError as error:
            body = error.body()
            if isinstance(params, dict) and "context" in params:
                body["context"] = params["context"]
            await event_queue.enqueue_event(make_task(context, state=pb.TaskState.TASK_STATE_FAILED, data=body,
                                                      message=body["adcp_error"]["message"]))
            return
        if body.get("status") == "submitted":  # still running: the AdCP task id is in the data
            await event_queue.enqueue_event(make_task(
                context, state=pb.TaskState.TASK_STATE_SUBMITTED, data=body,
                message=f"Submitted: poll get_task_status with task_id {body.get('task_id')}."))
            return
        await event_queue.enqueue_event(make_task(context, state=pb.TaskState.TASK_STATE_COMPLETED, data=body,
                                                  message=f"Completed {skill}"))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise AdcpRequestError(400, "UNSUPPORTED_FEATURE", "Tasks cannot be cancelled: they finish or fail on their own.")


def agent_card(registry: Registry, base_url: str, version: str) -> pb.AgentCard:
    url = f"{base_url.rstrip('/')}{RPC_PATH}"
    return pb.AgentCard(
        name="creative-sync",
        description="AdCP creative library and sync orchestration: the same operations as the MCP tools at /mcp.",
        version=version,
        # The a2a-sdk client attaches credentials only when the card names a scheme.
        security_schemes={"bearerAuth": pb.SecurityScheme(http_auth_security_scheme=pb.HTTPAuthSecurityScheme(scheme="bearer"))},
        security_requirements=[pb.SecurityRequirement(schemes={"bearerAuth": pb.StringList(list=[])})],
        # 0.3 first: the SDK's 0.3 converter takes the first 0.3 interface as the card's url.
        supported_interfaces=[pb.AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="0.3"),
                              pb.AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")],
        skills=[pb.AgentSkill(id=op.name, name=op.name, description=op.summary, tags=["adcp", *op.tags])
                for op in registry],
        capabilities=pb.AgentCapabilities(streaming=False, push_notifications=False),
        default_input_modes=["application/json"],
        default_output_modes=["application/json"],
    )


def _base_url(request: web.Request) -> str:
    configured = request.app[keys.SETTINGS].public_url
    return configured or f"{request.scheme}://{request.host}"


class A2AServer:
    """The a2a-sdk request handler and JSON-RPC dispatcher of one gateway."""

    def __init__(self, app: web.Application) -> None:
        registry = app[keys.OPERATIONS]
        self.handler = DefaultRequestHandler(agent_executor=RegistryExecutor(registry, app),
                                             task_store=BoundedTaskStore(),
                                             agent_card=agent_card(registry, "http://localhost", app[keys.VERSION]))
        self.dispatcher = JsonRpcDispatcher(self.handler, context_builder=_CallContext(), enable_v0_3_compat=True)


@routes.get(CARD_PATHS[0])
@routes.get(CARD_PATHS[1])
async def card(request: web.Request) -> web.Response:
    return web.json_response(agent_card_to_dict(agent_card(request.app[keys.OPERATIONS], _base_url(request),
                                                           request.app[keys.VERSION])))


@routes.post(RPC_PATH)
async def rpc(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        message = parse_body(body)  # the gateway's limits (depth, strings) before the SDK parses anything
    except AdcpRequestError as error:
        return web.json_response({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": error.message}},
                                 status=400)
    if isinstance(message, dict) and message.get("method") in _STREAMING:
        return web.json_response({"jsonrpc": "2.0", "id": message.get("id"), "error": {
            "code": -32004, "message": "Streaming is not supported: use message/send (the agent card says so)."}})
    scope = {"type": "http", "method": "POST", "path": RPC_PATH, "query_string": b"", "scheme": request.scheme,
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
             _SCOPE_KEY: (request[PRINCIPAL], request_id_of(request))}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    answer: StarletteResponse = await request.app[keys.A2A].dispatcher.handle_requests(StarletteRequest(scope, receive))
    if not isinstance(answer.body, bytes | bytearray):  # a stream: excluded above, never half-served
        log.error("A2A dispatcher answered a stream (request %s)", request_id_of(request))
        return web.json_response({"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": "Internal error."}},
                                 status=500)
    return web.Response(body=answer.body, status=answer.status_code,
                        content_type=answer.media_type or "application/json")

