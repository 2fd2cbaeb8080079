"""Webhooks from sales agents: `creative.status_changed` notifications and task webhooks of
sync_creatives, at POST /webhooks/sales-agents/{sales_agent_id} (the agent's scoped id, topics.ids).
A webhook speaks only for its own agent and account: decisions about another account's creatives
are refused here, and the status processor applies a decision only to a creative that was synced
to that very agent.

Nothing is published before the signature checks out: RFC 9421 (the AdCP webhook profile,
verified by the adcp library against the JWKS registered for the agent) or the legacy
HMAC-SHA256 with the agent's webhook secret. Unsigned, forged and stale requests get 401;
a retried fire (same idempotency_key, same payload) gets 200 and publishes nothing new; the
same key with another payload gets 409. Accepted decisions go onto approval_events.

The HMAC check is written here (`X-AdCP-Signature: sha256=hex(HMAC(secret, "{ts}.{body}"))`,
as gateway.webhooks signs) because importing adcp.signing costs ~8 s of CPU; the RFC 9421
verifier is loaded once, in a thread, when the first such webhook arrives.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway import keys
from gateway.errors import AdcpRequestError, error_response
from gateway.read_model import Bounded
from streams.status.logic import MAX_AGENT_CLOCK_AHEAD, trusted_agent_time
from streams.sync.logic import stable_id
from topics.catalogue import topic
from topics.events import ApprovalEvent, ApprovalSource

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
WINDOW_S = 300  # accepted clock skew of a signature's timestamp (the AdCP profiles' window)


# -- pure: signatures and payloads ----------------------------------------------------------------
def hmac_problem(secret: str, headers: Mapping[str, str], body: bytes, now: float, window_s: int = WINDOW_S) -> str | None:
    """Why a legacy HMAC-SHA256 signature does not hold (None: it holds)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    signature, timestamp = lowered.get("x-adcp-signature"), lowered.get("x-adcp-timestamp")
    if not signature or not timestamp:
        return "unsigned: no X-AdCP-Signature / X-AdCP-Timestamp"
    if not signature.startswith("sha256=") or not timestamp.isdigit():
        return "malformed signature headers"
    if abs(now - int(timestamp)) > window_s:
        return f"stale: the signature's timestamp is {abs(now - int(timestamp)):.0f} s away"
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, signature[len("sha256="):]) else "the signature does not match"


def _time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


class NotItsAccount(ValueError):
    """A webhook names an account other than its agent's."""


def approvals_from(agent_id: str, payload: Mapping[str, Any], now: datetime, *, account_id: str | None) -> list[ApprovalEvent]:
    """The review decisions a webhook of agent `agent_id` (of account `account_id`) carries. Raises
    ValueError when it is not one we know, or its time lies in the future; NotItsAccount when it
    speaks about another account."""
    approvals = _approvals(agent_id, payload, now)
    if any(a.account_id != account_id for a in approvals):
        raise NotItsAccount("a sales agent's webhook may only report on creatives of the account that registered it")
    if any(a.agent_updated_at is not None and trusted_agent_time(a.agent_updated_at, now) is None for a in approvals):
        raise ValueError(f"its observation time lies more than {MAX_AGENT_CLOCK_AHEAD} ahead of ours")
    return approvals


def _approvals(agent_id: str, payload: Mapping[str, Any], now: datetime) -> list[ApprovalEvent]:
    key = payload.get("idempotency_key")
    if not isinstance(key, str) or not key:
        raise ValueError("idempotency_key is required")
    if payload.get("notification_type") == "creative.status_changed":
        transition = payload.get("transition")
        account, creative = payload.get("account_id"), payload.get("creative_id")
        if not isinstance(transition, Mapping) or not isinstance(account, str) or not isinstance(creative, str) \
                or not isinstance(transition.get("to"), str):
            raise ValueError("creative.status_changed needs account_id, creative_id and transition.to")
        reason = payload.get("reason_detail") or payload.get("reason_code")
        return [ApprovalEvent(
            event_id=stable_id("webhook", agent_id, key)[:32], sales_agent_id=agent_id, account_id=account,
            creative_id=creative, status=transition["to"],
            rejection_reason=str(reason) if reason and transition["to"] in ("rejected", "suspended") else None,
            source=ApprovalSource.WEBHOOK, source_idempotency_key=key, observed_at=now,
            agent_updated_at=_time(transition.get("observed_at")) or _time(payload.get("fired_at")))]
    if payload.get("task_type") == "sync_creatives" and isinstance(payload.get("result"), Mapping):
        result = payload["result"]
        account = (result.get("account") or {}).get("account_id") if isinstance(result.get("account"), Mapping) else None
        account = account or (payload.get("account") or {}).get("account_id") if isinstance(payload.get("account"), Mapping) \
            else account
        if not isinstance(account, str):
            raise ValueError("a sync_creatives task webhook needs the account")
        return [ApprovalEvent(
            event_id=stable_id("task-webhook", agent_id, key, item.get("creative_id"))[:32], sales_agent_id=agent_id,
            account_id=account, creative_id=str(item["creative_id"]), status=str(item["status"]),
            rejection_reason=(item.get("warnings") or [None])[0] if item.get("status") == "rejected" else None,
            source=ApprovalSource.TASK_WEBHOOK, source_idempotency_key=key, observed_at=now,
            agent_updated_at=_time(payload.get("timestamp")))
            for item in result.get("creatives") or [] if isinstance(item, Mapping) and item.get("status")
            and item.get("creative_id")]
    raise ValueError("not a creative.status_changed notification nor a sync_creatives task webhook")


# -- the endpoint ---------------------------------------------------------------------------------
class Inbound:
    """What the endpoint remembers: the fires it accepted (idempotency key -> payload digest)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.seen: Bounded = Bounded(limit)
        self._verify_9421: Any = None
        self._lock = asyncio.Lock()

    async def verify_9421(self, request: web.Request, body: bytes, jwks: dict[str, Any]) -> str | None:
        async with self._lock:
            if self._verify_9421 is None:
                self._verify_9421 = await asyncio.to_thread(_load_9421)
        return self._verify_9421(request.method, str(request.url), dict(request.headers), body, jwks)


def _load_9421():  # noqa: ANN202 - runs in a thread: importing adcp.signing is the slow part
    from adcp.signing.jwks import StaticJwksResolver
    from adcp.signing.replay import InMemoryReplayStore
    from adcp.signing.webhook_verifier import WebhookVerifyOptions, verify_webhook_signature

    replays = InMemoryReplayStore()

    def verify(method: str, url: str, headers: dict[str, str], body: bytes, jwks: dict[str, Any]) -> str | None:
        try:
            verify_webhook_signature(method=method, url=url, headers=headers, body=body, options=WebhookVerifyOptions(
                jwks_resolver=StaticJwksResolver(jwks), replay_store=replays))
        except Exception as exc:  # every verification failure is a refusal, with its reason
            return f"{type(exc).__name__}: {exc}"
        return None

    return verify


def _refuse(status: int, code: str, message: str) -> web.Response:
    return error_response(AdcpRequestError(status, code, message, recovery="terminal" if status == 401 else "correctable"))


@routes.post("/webhooks/sales-agents/{sales_agent_id}")
async def receive(request: web.Request) -> web.Response:
    app = request.app
    agent_id = request.match_info["sales_agent_id"]
    agent = app[keys.AGENTS].get(agent_id)
    metrics = app[keys.METRICS]
    if agent is None:
        return _refuse(404, "REFERENCE_NOT_FOUND", f"No sales agent {agent_id}.")
    body = await request.read()
    if "signature" in {k.lower() for k in request.headers} and agent.webhook_jwks_json:
        problem = await app[keys.INBOUND].verify_9421(request, body, json.loads(agent.webhook_jwks_json))
    else:
        secrets = app[keys.AGENTS].secrets(agent_id)
        problem = hmac_problem(secrets.webhook_secret, request.headers, body, time.time()) \
            if secrets and secrets.webhook_secret else "unsigned, or no way registered to verify this agent's signatures"
    if problem:
        log.warning("refused a webhook from sales agent %s: %s", agent_id, problem)
        metrics.inbound_webhooks.labels("refused").inc()
        return _refuse(401, "AUTH_INVALID", f"Webhook signature refused: {problem}.")
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("the body is not a JSON object")
        approvals = approvals_from(agent_id, payload, datetime.now(UTC), account_id=agent.account_id)
    except NotItsAccount as exc:
        metrics.inbound_webhooks.labels("refused").inc()
        log.warning("refused a webhook from sales agent %s: %s", agent_id, exc)
        return _refuse(403, "PERMISSION_DENIED", f"{exc}.")
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        metrics.inbound_webhooks.labels("invalid").inc()
        return _refuse(400, "INVALID_REQUEST", f"Not a webhook we understand: {exc}.")
    inbound, digest = app[keys.INBOUND], hashlib.sha256(body).hexdigest()
    seen_key = f"{agent_id}/{payload['idempotency_key']}"
    seen = inbound.seen.get(seen_key)
    if seen is not None:
        metrics.inbound_webhooks.labels("duplicate" if seen == digest else "conflict").inc()
        if seen != digest:
            return _refuse(409, "IDEMPOTENCY_CONFLICT", "This idempotency_key came with another payload.")
        return web.json_response({"status": "duplicate"})
    settings, codecs, broker = app[keys.SETTINGS], app[keys.CODECS], app[keys.BROKER]
    for approval in approvals:
        await broker.publish(topic("approval_events").full_name(settings.topic_prefix),
                             key=codecs.key("approval_events").encode(f"{approval.account_id}/{approval.creative_id}"),
                             value=codecs.value("approval_events").encode(approval))
    inbound.seen[seen_key] = digest  # after publishing: a failed publish is retried by the sender
    metrics.inbound_webhooks.labels("accepted").inc()
    return web.json_response({"status": "accepted", "events": len(approvals)})
