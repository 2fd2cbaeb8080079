"""AdCP-shaped errors: {code, message, field?, suggestion?, retry_after?, recovery}, answered in the
3.2 protocol envelope of a failed task: `status: failed`, the first error as the envelope's
`adcp_error` (where the official clients read code and recovery) and every error in `errors`."""
from __future__ import annotations

import json
from typing import Any, Literal

from aiohttp import web

Recovery = Literal["transient", "correctable", "terminal"]


ADCP_ERROR_MAX_BYTES = 4000  # the transport's cap on one `adcp_error` is 4 KB


def failed(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The envelope of a failed task (protocol-envelope.json: status, adcp_error; payload errors)."""
    first = dict(errors[0])
    if len(json.dumps(first)) > ADCP_ERROR_MAX_BYTES:  # cut the prose, never the code
        first.update(message=str(first.get("message", ""))[:2000], suggestion=str(first.get("suggestion", ""))[:1000])
    return {"status": "failed", "adcp_error": first, "errors": errors}


class AdcpRequestError(Exception):
    """Raised anywhere in a handler; the error middleware answers with the AdCP error shape."""

    def __init__(self, status: int, code: str, message: str, *, recovery: Recovery = "correctable",
                 field: str | None = None, suggestion: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.recovery, self.field, self.suggestion, self.retry_after = recovery, field, suggestion, retry_after

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "recovery": self.recovery}
        if self.field:
            error["field"] = self.field
        if self.suggestion:
            error["suggestion"] = self.suggestion
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return failed([error])


def broker_unavailable(detail: str = "the event broker is unreachable") -> AdcpRequestError:
    return AdcpRequestError(503, "SERVICE_UNAVAILABLE", f"Service temporarily unavailable: {detail}. Nothing was applied.",
                            recovery="transient", retry_after=5, suggestion="Retry with the same idempotency_key.")


class OutcomeUnknown(AdcpRequestError):
    """A publish was sent but not acknowledged in time: it may well have landed (29 of 30 did when
    this was measured), so "nothing was applied" would be a lie. Callers with a deterministic task
    id answer `submitted` instead; the others pass this on."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, "SERVICE_UNAVAILABLE",
                         f"The outcome is unknown: {detail}. The change may or may not have been applied.",
                         recovery="transient", retry_after=5,
                         suggestion="Read the entity back (get/list) before retrying; a sync_creatives retry with the "
                                    "same idempotency_key is applied at most once.")


def too_large(detail: str) -> AdcpRequestError:
    return AdcpRequestError(413, "INVALID_REQUEST", f"The request is too large to be stored: {detail}. Nothing was applied.",
                            recovery="correctable", suggestion="Send fewer or smaller creatives per request.")


def invalid(message: str, field: str | None = None, code: str = "INVALID_REQUEST") -> AdcpRequestError:
    return AdcpRequestError(400, code, message, field=field, recovery="correctable")


def error_response(error: AdcpRequestError) -> web.Response:
    headers = {"Retry-After": str(int(error.retry_after))} if error.retry_after is not None else {}
    if error.status == 401:  # RFC 9110: a 401 names the scheme to authenticate with
        headers["WWW-Authenticate"] = 'Bearer realm="creative-sync"'
    return web.json_response(error.body(), status=error.status, headers=headers or None)


class AdcpErrors(AdcpRequestError):
    """Several AdCP errors at once (the error branch of a task response), e.g. every invalid field."""

    def __init__(self, status: int, errors: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
        first = errors[0] if errors else {"code": "INVALID_REQUEST", "message": "Invalid request."}
        super().__init__(status, first["code"], first["message"], recovery=first.get("recovery", "correctable"),
                         field=first.get("field"))
        self.errors, self.extra = errors, extra or {}

    def body(self) -> dict[str, Any]:
        return {**failed(self.errors), **self.extra}
