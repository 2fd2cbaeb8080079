"""One registry of operations, from which both transports are generated: MCP tools at `/mcp` and
REST routes under `/api/v1/` (with their OpenAPI document). Adding an operation here adds it to both.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.auth import Principal

Handler = Callable[["Call"], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Call:
    """One invocation of an operation, whichever transport it came through."""

    app: web.Application
    principal: Principal
    params: dict[str, Any]


@dataclass(frozen=True)
class Operation:
    name: str
    summary: str
    input_schema: dict[str, Any]  # JSON Schema of the arguments (tools/list, OpenAPI)
    handler: Handler
    tags: tuple[str, ...] = field(default=("creative",))


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
