"""Error, authentication and metrics middleware: every failure leaves as an AdCP error, never a bare 5xx page."""
from __future__ import annotations

import logging
import re
import secrets
import time

from aiohttp import web

from gateway import keys
from gateway.auth import Principal, bearer_token
from gateway.errors import AdcpRequestError, error_response

log = logging.getLogger(__name__)
WEBHOOK_PREFIX = "/webhooks/"
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/.well-known/jwks.json",
                          # the A2A agent card is discovery, public like the MCP server's initialize answer
                          "/.well-known/agent-card.json", "/.well-known/agent.json"})
PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)
_CALLER_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id_of(request: web.Request) -> str:
    return request.get(REQUEST_ID, "-")


@web.middleware
async def errors(request: web.Request, handler):  # noqa: ANN001
    """Every answer carries X-Request-Id (the caller's, when it is a sane one), the id the logs use."""
    offered = request.headers.get("X-Request-Id", "")
    request[REQUEST_ID] = offered if _CALLER_REQUEST_ID.match(offered) else secrets.token_hex(8)
    response = await _answer(request, handler)
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    return response


async def _answer(request: web.Request, handler):  # noqa: ANN001, ANN202
    try:
        return await handler(request)
    except AdcpRequestError as error:
        return error_response(error)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[keys.SETTINGS].max_body_bytes
        return error_response(AdcpRequestError(413, "INVALID_REQUEST", f"Request body exceeds the {limit}-byte limit.",
                                               recovery="correctable", suggestion="Send fewer creatives per request."))
    except web.HTTPException as exc:  # routing answers (404, 405): keep the status, AdCP body
        if exc.status < 400:
            raise
        code = "REFERENCE_NOT_FOUND" if exc.status == 404 else "INVALID_REQUEST"
        return error_response(AdcpRequestError(exc.status, code, exc.reason, recovery="correctable"))
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", request.method, request.path, request[REQUEST_ID])
        return error_response(AdcpRequestError(500, "SERVICE_UNAVAILABLE",
                                               f"Internal error (request id {request[REQUEST_ID]}).",
                                               recovery="transient", retry_after=1))


@web.middleware
async def authenticate(request: web.Request, handler):  # noqa: ANN001
    if request.path in PUBLIC_PATHS or request.path.startswith(WEBHOOK_PREFIX):  # webhooks: signature-checked
        return await handler(request)
    token = bearer_token(request.headers)
    if token is None:
        raise AdcpRequestError(401, "AUTH_REQUIRED", "Authentication required: send 'Authorization: Bearer <token>'.",
                               recovery="correctable")
    principal = request.app[keys.PRINCIPALS].authenticate(token)
    if principal is None:
        raise AdcpRequestError(401, "AUTH_INVALID", "The token is not valid.", recovery="correctable")
    request[PRINCIPAL] = principal
    return await handler(request)


@web.middleware
async def measure(request: web.Request, handler):  # noqa: ANN001
    metrics = request.app[keys.METRICS]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    started = time.perf_counter()
    response = await handler(request)
    metrics.latency.labels(route).observe(time.perf_counter() - started)
    metrics.requests.labels(route, str(response.status)).inc()
    return response
