"""One registry of operations, from which both transports are generated: MCP tools at `/mcp` and
REST routes under `/api/v1/` (with their OpenAPI document). Adding an operation here adds it to both.
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.auth import Principal
from gateway.errors import AdcpRequestError
from gateway.validation import check_input, compile_schema, discovery_schema

log = logging.getLogger(__name__)

Handler = Callable[["Call"], Awaitable[dict[str, Any]]]
#: A schema this small is advertised as it is; a larger one as its discovery summary.
_ADVERTISED_AS_IS_BYTES = 8000


def official_schema(tool: str) -> dict[str, Any]:
    """The official request schema of an AdCP task (what requests are validated against)."""
    from adcp.validation import get_validator

    validator = get_validator(tool, "request")
    return dict(validator.schema) if validator is not None else {"type": "object"}


@dataclass(frozen=True)
class Call:
    """One invocation of an operation, whichever transport it came through."""

    app: web.Application
    principal: Principal
    params: dict[str, Any]
    request_id: str = "-"


@dataclass(frozen=True)
class Operation:
    name: str
    summary: str
    input_schema: dict[str, Any]  # JSON Schema of the arguments (tools/list, OpenAPI)
    handler: Handler
    tags: tuple[str, ...] = field(default=("creative",))
    #: What the input is checked against before the handler runs, when it differs from the
    #: advertised schema (sync_creatives: creatives are checked by the handler, per validation_mode).
    check_schema: dict[str, Any] | None = None

    @functools.cached_property
    def discovery_schema(self) -> dict[str, Any]:
        """The input schema tools/list shows (MCP clients load every tool's at once)."""
        small = len(json.dumps(self.input_schema)) <= _ADVERTISED_AS_IS_BYTES
        return self.input_schema if small else discovery_schema(self.input_schema)

    @functools.cached_property
    def _validator(self) -> Any:
        return compile_schema(self.check_schema if self.check_schema is not None else self.input_schema)

    async def invoke(self, app: web.Application, principal: Principal, params: Any, request_id: str) -> dict[str, Any]:
        """The one way an operation runs, from either transport: its input checked first (shape,
        strings, schema), and any failure leaving as an AdCP error, never a traceback."""
        account = params.get("account") if isinstance(params, dict) else None
        if isinstance(account, dict) and isinstance(account.get("account_id"), str):
            # Every operation, even one that only reads formats; before anything else is looked at.
            principal.require_account(account["account_id"])
        call = Call(app, principal, check_input(self._validator, params), request_id)
        try:
            body = await self.handler(call)
        except AdcpRequestError:
            raise
        except Exception:
            log.exception("operation %s failed unexpectedly (request %s)", self.name, request_id)
            raise AdcpRequestError(500, "SERVICE_UNAVAILABLE", f"Internal error while running {self.name} "
                                   f"(request id {request_id}); it may not have completed.", recovery="transient",
                                   retry_after=1, suggestion="Retry; quote the request id if it happens again.") from None
        # The protocol envelope's task status, required on every answer (a submitted task, or
        # get_task_status's own, says so already).
        return body if "status" in body else {"status": "completed", **body}


class Registry:
    def __init__(self, operations: Iterable[Operation] = ()) -> None:
        self._operations: dict[str, Operation] = {}
        for operation in operations:
            self.add(operation)

    def add(self, operation: Operation) -> None:
        if operation.name in self._operations:
            raise ValueError(f"operation {operation.name} registered twice")
        self._operations[operation.name] = operation

    def get(self, name: str) -> Operation | None:
        return self._operations.get(name)

    def __iter__(self):
        return iter(self._operations.values())
