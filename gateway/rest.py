"""REST under `/api/v1/`: `POST /api/v1/<operation>` with the operation's JSON arguments, generated
from the operation registry, and the OpenAPI document at `GET /api/v1/openapi.json`.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import keys
from gateway.errors import AdcpRequestError
from gateway.middleware import PRINCIPAL, request_id_of
from gateway.operations import Registry
from gateway.validation import parse_body

routes = web.RouteTableDef()


@routes.post("/api/v1/{operation}")
async def call(request: web.Request) -> web.Response:
    operation = request.app[keys.OPERATIONS].get(request.match_info["operation"])
    if operation is None:
        raise AdcpRequestError(404, "REFERENCE_NOT_FOUND", f"Unknown operation {request.match_info['operation']!r}.",
                               recovery="correctable", suggestion="GET /api/v1/openapi.json lists the operations.")
    params = parse_body(await request.read())
    body = await operation.invoke(request.app, request[PRINCIPAL], params, request_id_of(request))
    status = 202 if body.get("status") == "submitted" else 200
    return web.json_response(body, status=status)


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[keys.OPERATIONS], request.app[keys.VERSION]))


def openapi_document(registry: Registry, version: str) -> dict[str, Any]:
    error = {"description": "AdCP error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}}
    paths = {}
    for operation in registry:
        paths[f"/api/v1/{operation.name}"] = {"post": {
            "operationId": operation.name,
            "summary": operation.summary,
            "tags": list(operation.tags),
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{operation.name}_request"}}}},
            "responses": {
                "200": {"description": "The AdCP response", "content": {"application/json": {"schema": {"type": "object"}}}},
                "202": {"description": "Submitted: poll get_task_status with task_id"},
                "400": error, "401": error, "403": error, "409": error, "413": error, "503": error,
            },
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "creative-sync", "version": version,
                 "description": "AdCP creative library and sync orchestration. The same operations are MCP tools at /mcp."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            # each request schema once, referenced by its path
            "schemas": {**{f"{op.name}_request": op.input_schema for op in registry}, "Errors": {"type": "object", "required": ["errors"], "properties": {"errors": {
                "type": "array", "items": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"},
                    "suggestion": {"type": "string"}, "retry_after": {"type": "number"},
                    "recovery": {"enum": ["transient", "correctable", "terminal"]}}}}}}},
        },
        "security": [{"bearer": []}],
    }

