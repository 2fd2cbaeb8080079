"""Sales agents and syncing, as operations of the registry (MCP tools and REST routes alike):
register, update, remove and list sales agents; sync a creative to sales agents by hand; read
where each creative stands with each agent.

Registry changes are published to the sales_agents topic (secrets sealed onto the credentials
topic, never echoed); the worker that owns an agent discovers it and delivers to it. A manual
sync is matched here, against the gateway's views of the library and the registry: compatible
agents get a job on sync_jobs, the others a `skipped` result with the reason.
"""
from __future__ import annotations

import json
import re
import secrets as random_secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from gateway import keys, library
from gateway.errors import AdcpErrors, AdcpRequestError, invalid
from gateway.operations import Call, Operation
from streams.library.queries import as_adcp
from gateway.scope import (MAX_CREATIVES, account_of, agent_of, claim, creative_ids_of, entity_id_of, owned, target_url,
                           visible_to)
from streams.matching.plan import AWAITING_DISCOVERY
from streams.status.logic import summary
from streams.sync.logic import formats_known
from topics.catalogue import topic
from topics.credentials import AgentSecrets
from topics.ids import public, public_all, scoped, webhook_path
from topics.events import (AgentProtocol, EntityType, SalesAgent, SalesAgentCredentials, SyncState, SyncTrigger,
                           SyncTriggerCommand, TaskResult)

_AUTH_HEADERS = ("Authorization", "x-adcp-auth")


def agent_view(agent: SalesAgent, extra_header_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """A sales agent as the API shows it: everything but its secrets (of its extra headers, the names)."""
    formats = json.loads(agent.discovered_formats_json) if agent.discovered_formats_json else []
    return {
        "sales_agent_id": public(agent.sales_agent_id), "name": agent.name, "agent_url": agent.agent_url,
        "protocol": agent.protocol.value.lower(), "auth_header": agent.auth_header,
        "has_auth_token": agent.credentials_ref is not None, "has_webhook_secret": agent.has_webhook_secret,
        "webhook_url": webhook_path(agent.sales_agent_id),
        "webhook_signing": "rfc9421" if agent.webhook_jwks_json else ("hmac-sha256" if agent.has_webhook_secret else None),
        "declared_formats": list(agent.declared_formats),
        "discovered_formats": [f.get("format_id") for f in formats if isinstance(f, dict)],
        "adcp_versions": list(agent.adcp_versions), "negotiated_version": agent.negotiated_version,
        "version_reason": agent.version_reason, "endpoint_url": agent.endpoint_url,
        "extra_headers": list(extra_header_names), "accepts_webhooks": agent.accepts_webhooks,
        "available": agent.available and agent.circuit != "open",
        "discovery": "done" if agent.discovered_at else ("failed" if agent.discovery_error else "pending"),
        "discovery_error": agent.discovery_error,
        "discovered_at": agent.discovered_at.isoformat() if agent.discovered_at else None,
        "live": live_state(agent),
        "updated_at": agent.updated_at.isoformat(),
    }


def live_state(agent: SalesAgent) -> dict[str, Any]:
    """How calls to the agent go now (next to what discovery found): ok, failing (since when,
    why) or paused (circuit open), and the last call it answered."""
    if agent.discovered_at is None and agent.discovery_error:
        state = "unreachable"
    elif agent.failing_since is not None:
        state = "circuit_open" if agent.circuit == "open" else "failing"
    else:
        state = "ok" if agent.discovered_at else "pending"
    return {"state": state, "circuit": agent.circuit or "closed",
            "failing_since": agent.failing_since.isoformat() if agent.failing_since else None,
            "last_error": agent.last_error if agent.failing_since else agent.discovery_error,
            "last_success_at": agent.last_success_at.isoformat() if agent.last_success_at else None}


def _text(params: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = params.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{name} is required: a non-empty string.", name)
    return value.strip()


def _agent_fields(params: dict[str, Any], current: SalesAgent | None) -> dict[str, Any]:
    """The registry fields a request sets, validated (`current`: an update, fields optional)."""
    fields: dict[str, Any] = {}
    name = _text(params, "name", required=current is None)
    if name is not None:
        fields["name"] = name[:200]
    url = _text(params, "agent_url", required=current is None)
    if url is not None:  # (checked against the outbound policy by the caller: it resolves the name)
        fields["agent_url"] = url
    protocol = params.get("protocol", None if current else "mcp")
    if protocol is not None:
        if protocol not in ("mcp", "a2a"):
            raise invalid("protocol must be mcp or a2a.", "protocol")
        fields["protocol"] = AgentProtocol(protocol.upper())
    auth = params.get("auth")
    if auth is not None:
        if not isinstance(auth, dict) or not isinstance(auth.get("token", ""), str):
            raise invalid("auth must be {token, header}.", "auth")
        header = auth.get("header", "Authorization")
        if header not in _AUTH_HEADERS:
            raise invalid(f"auth.header must be one of {', '.join(_AUTH_HEADERS)}.", "auth.header")
        fields["auth_header"] = header
    formats = params.get("formats")
    if formats is not None:
        if not isinstance(formats, list) or not all(isinstance(f, str) and f for f in formats):
            raise invalid("formats must be a list of format ids, format kinds or MIME types (video/*).", "formats")
        fields["declared_formats"] = formats
    if "webhook_jwks" in params:
        jwks = params["webhook_jwks"]
        if jwks is not None and (not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list)):
            raise invalid("webhook_jwks must be a JWKS: {\"keys\": [...]} (public keys only).", "webhook_jwks")
        if jwks is not None and any(isinstance(k, dict) and "d" in k for k in jwks["keys"]):
            raise invalid("webhook_jwks must hold public keys only.", "webhook_jwks")
        fields["webhook_jwks_json"] = json.dumps(jwks) if jwks else None
    if "webhook_secret" in params:
        secret = params["webhook_secret"]
        if secret is not None and (not isinstance(secret, str) or len(secret) < 32):
            raise invalid("webhook_secret must be at least 32 characters.", "webhook_secret")
    return fields  # (extra headers are secrets: validated by _secrets, before anything is published)


_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_RESERVED_HEADERS = {"authorization", "x-adcp-auth", "host", "content-length", "content-type", "transfer-encoding",
                     "connection", "mcp-session-id", "mcp-protocol-version", "accept", "cookie"}


def _headers(params: dict[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """The extra static headers a request sets for every call to the agent (e.g. a tenant header)."""
    if "headers" not in params:
        return None
    headers = params["headers"] or {}
    if not isinstance(headers, dict) or len(headers) > 20:
        raise invalid("headers must be an object of at most 20 header names to values.", "headers")
    for name, value in headers.items():
        if not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS:
            raise invalid(f"headers: {name!r} is not a header name that can be set here (auth goes in auth).", "headers")
        if not isinstance(value, str) or not value or len(value) > 1000 or any(c in value for c in "\r\n\0"):
            raise invalid(f"headers.{name} must be a one-line string of at most 1000 characters.", f"headers.{name}")
    return tuple(sorted(headers.items()))


async def _publish_agent(call: Call, agent: SalesAgent, secrets: AgentSecrets | None) -> None:
    app = call.app
    settings, codecs, broker, directory = app[keys.SETTINGS], app[keys.CODECS], app[keys.BROKER], app[keys.AGENTS]
    if secrets is not None:  # sealed first: the agent is never usable without its credentials
        sealed = SalesAgentCredentials(sales_agent_id=agent.sales_agent_id, ciphertext=directory.box.seal(secrets),
                                       updated_at=agent.updated_at)
        await broker.publish(topic("sales_agent_credentials").full_name(settings.topic_prefix),
                             key=codecs.key("sales_agent_credentials").encode(agent.sales_agent_id),
                             value=codecs.value("sales_agent_credentials").encode(sealed))
        directory.credentials.apply(sealed)
    await broker.publish(topic("sales_agents").full_name(settings.topic_prefix),
                         key=codecs.key("sales_agents").encode(agent.sales_agent_id),
                         value=codecs.value("sales_agents").encode(agent))
    directory.agents.apply(agent)


def _secrets(params: dict[str, Any], before: AgentSecrets | None) -> AgentSecrets | None:
    """The agent's secrets after a request (None: unchanged). Every agent has a webhook secret:
    the buyer's, or one made here, which the worker hands to agents that push their review
    decisions (push_notification_config) and the webhook endpoint verifies."""
    if before is not None and not {"auth", "webhook_secret", "headers"} & params.keys():
        return None
    token = (params.get("auth") or {}).get("token") if "auth" in params else (before.auth_token if before else None)
    secret = params.get("webhook_secret") if "webhook_secret" in params else (before.webhook_secret if before else None)
    headers = _headers(params)
    return AgentSecrets(token or None, secret or random_secrets.token_urlsafe(32),
                        headers if headers is not None else (before.headers if before else ()))


async def register_sales_agent(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    public_id = entity_id_of(call.params.get("sales_agent_id") or f"sa-{uuid.uuid4().hex[:12]}", "sales_agent_id")
    agent_id = scoped(account_id, public_id)  # ids are per account: another account's agent is never touched
    directory = call.app[keys.AGENTS]
    existing = directory.agents.get(agent_id)
    if existing is not None and not existing.deleted:
        raise AdcpRequestError(409, "CONFLICT", f"Sales agent {public_id} is already registered; use update_sales_agent.",
                               field="sales_agent_id")
    fields = _agent_fields(call.params, None)
    await target_url(call, fields["agent_url"], "agent_url")
    secrets = _secrets(call.params, None)
    agent = SalesAgent(sales_agent_id=agent_id, account_id=account_id, available=False, updated_at=datetime.now(UTC),
                       credentials_ref=agent_id if secrets and secrets.auth_token else None,
                       has_webhook_secret=bool(secrets and secrets.webhook_secret),
                       revision=(existing.revision if existing is not None else 0) + 1, **fields)
    with claim(call, "SALES_AGENT", agent_id, public_id, "sales_agent_id"):
        await _publish_agent(call, agent, secrets)
    return {"sales_agent": agent_view(agent, _header_names(secrets))}


async def update_sales_agent(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    current = _owned_agent(call, account_id)
    fields = _agent_fields(call.params, current)
    if "agent_url" in fields:
        await target_url(call, fields["agent_url"], "agent_url")
    secrets = _secrets(call.params, call.app[keys.AGENTS].secrets(current.sales_agent_id))
    if secrets is not None:
        fields.update(credentials_ref=current.sales_agent_id if secrets.auth_token else None,
                      has_webhook_secret=bool(secrets.webhook_secret))
    # A new address or dialect is rediscovered by its worker.
    rediscover = {"agent_url", "protocol", "auth_header"} & fields.keys() or secrets is not None
    # A new revision: a discovery of the old registration still on its way loses to it.
    updated = current.model_copy(update={**fields, "updated_at": datetime.now(UTC), "revision": current.revision + 1,
                                         **({"discovered_at": None, "endpoint_url": None, "discovery_error": None,
                                             "failing_since": None, "circuit": None, "last_error": None}
                                            if rediscover else {})})
    await _publish_agent(call, updated, secrets)
    return {"sales_agent": agent_view(updated, _header_names(secrets or call.app[keys.AGENTS].secrets(current.sales_agent_id)))}


async def remove_sales_agent(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    current = _owned_agent(call, account_id)
    removed = current.model_copy(update={"deleted": True, "available": False, "updated_at": datetime.now(UTC),
                                         "revision": current.revision + 1})
    await _publish_agent(call, removed, AgentSecrets() if current.credentials_ref or current.has_webhook_secret else None)
    return {"sales_agent_id": public(current.sales_agent_id), "removed": True}


async def list_sales_agents(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    directory = call.app[keys.AGENTS]
    agents = sorted((a for a in directory.active() if visible_to(a, account_id)), key=lambda a: a.name)
    return {"sales_agents": [agent_view(a, _header_names(directory.secrets(a.sales_agent_id))) for a in agents]}


def _header_names(secrets: AgentSecrets | None) -> tuple[str, ...]:
    return tuple(name for name, _ in secrets.headers) if secrets is not None else ()


def _owned_agent(call: Call, account_id: str) -> SalesAgent:
    return agent_of(call, call.params.get("sales_agent_id"), account_id)


# -- manual sync ----------------------------------------------------------------------------------
async def trigger_sync(call: Call, trigger: SyncTriggerCommand) -> TaskResult | None:
    """Publish a sync trigger for the matcher (streams/matching/agent.py) and wait for its answer
    within the request budget; None when it outlives the budget (the caller answers `submitted`:
    get_task_status has the answer later, under the trigger's id)."""
    app = call.app
    settings, codecs, view = app[keys.SETTINGS], app[keys.CODECS], app[keys.LIBRARY_VIEW]
    answer = view.expect(trigger.trigger_id, fresh=True)  # before publishing: the answer may come back at once
    app[keys.TASKS].submitted(trigger.trigger_id, trigger.account_id, "sync_creative_to_sales_agents",
                              trigger.requested_at, None)
    await app[keys.BROKER].publish(topic("sync_triggers").full_name(settings.topic_prefix),
                                   key=codecs.key("sync_triggers").encode(trigger.account_id),
                                   value=codecs.value("sync_triggers").encode(trigger))
    app[keys.METRICS].published.labels("sync_triggers").inc()
    result = await view.settle(trigger.trigger_id, answer, settings.request_budget_s)
    if result is None:
        app[keys.TASKS].watch(trigger.trigger_id)
    return result


def new_trigger(account_id: str, kind: SyncTrigger, creative_ids: list[str], **fields: Any) -> SyncTriggerCommand:
    return SyncTriggerCommand(trigger_id=f"sync_{uuid.uuid4().hex}", account_id=account_id, trigger=kind,
                              creative_ids=creative_ids, requested_at=datetime.now(UTC), **fields)


async def sync_creative_to_sales_agents(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    creative_ids = creative_ids_of(call.params)
    directory = call.app[keys.AGENTS]
    wanted, agent_ids = call.params.get("sales_agent_ids"), None
    if wanted is not None:
        if not isinstance(wanted, list) or not all(isinstance(a, str) for a in wanted) or not wanted:
            raise invalid("sales_agent_ids must be a non-empty list of ids (or left out: every compatible agent).",
                          "sales_agent_ids")
        unknown = [a for a in wanted if not visible_to(directory.get(scoped(account_id, a)), account_id)]
        if unknown:
            raise AdcpRequestError(404, "REFERENCE_NOT_FOUND", f"Unknown sales agents: {', '.join(unknown)}.",
                                   field="sales_agent_ids")
        agent_ids = [scoped(account_id, a) for a in dict.fromkeys(wanted)]
    campaign_id = (await owned(call, EntityType.CAMPAIGN, "campaign_id", account_id)).entity_id \
        if call.params.get("campaign_id") is not None else None
    brand_agent_id = (await owned(call, EntityType.BRAND_AGENT, "brand_agent_id", account_id)).entity_id \
        if call.params.get("brand_agent_id") is not None and campaign_id is None else None
    trigger = new_trigger(account_id, SyncTrigger.MANUAL, creative_ids, sales_agent_ids=agent_ids,
                          campaign_id=campaign_id, brand_agent_id=brand_agent_id)
    result = await trigger_sync(call, trigger)
    if result is None:
        return {"status": "submitted", "task_id": trigger.trigger_id,
                "message": "Accepted; the matcher is queueing it. Poll get_task_status for what went where."}
    body = json.loads(result.result_json)
    field = "creative_ids" if "creative_ids" in call.params else "creative_id"
    if body.get("errors"):
        raise AdcpErrors(404, [{**e, "field": field} for e in body["errors"]])
    if "creative_ids" in call.params:
        return {"creatives": body["creatives"], "sales_agents_from": body["sales_agents_from"]}
    return {**body["creatives"][0], "sales_agents_from": body["sales_agents_from"]}


# -- status ---------------------------------------------------------------------------------------
async def get_creative_sync_status(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    ids = creative_ids_of(call.params)
    found = await library.creatives(call.app, account_id, ids)
    directory = call.app[keys.AGENTS]
    missing = [i for i in ids if i not in found]
    if missing:
        raise AdcpRequestError(404, "REFERENCE_NOT_FOUND", f"No creative {missing[0]} in this library.", field="creative_ids")
    status = await library.status_rows(call.app, account_id, ids)
    creatives = []
    for creative_id in ids:
        rows = status[creative_id]
        creatives.append({
            "creative_id": creative_id, "content_version": found[creative_id].content_version,
            "summary": {"total_agents": len(rows), **summary(rows)},
            "sales_agents": [{
                "sales_agent_id": public(r.sales_agent_id),
                "name": _agent_name(directory, r.sales_agent_id),
                "sync_status": _shown_status(r, directory.get(r.sales_agent_id)), "approval_status": r.approval_status,
                "reason": r.rejection_reason or r.skip_reason or r.last_error,
                "attempts": r.attempts, "content_version_synced": r.content_version_synced,
                "platform_creative_id": r.platform_creative_id,
                "last_sync_date": r.last_sync_at.isoformat() if r.last_sync_at else None,
                "updated_at": r.updated_at.isoformat()} for r in rows],
        })
    return {"creatives": creatives}


def _shown_status(row: Any, agent: SalesAgent | None) -> str:
    """A row's sync status; a job waiting for its agent's discovery says so."""
    if row.sync_status in (SyncState.PENDING, SyncState.SYNCING) and agent is not None and not formats_known(agent):
        return AWAITING_DISCOVERY
    return row.sync_status.value.lower()


def _agent_name(directory: Any, agent_id: str) -> str:
    """The agent's name, also once it is removed (status rows outlive it)."""
    agent = directory.agents.get(agent_id)
    return agent.name if agent is not None else public(agent_id)


async def get_creative(call: Call) -> dict[str, Any]:
    """A creative with where it stands everywhere, in the product brief's shape: `syncStatusSummary`
    (relevant agents: every agent it was matched against but skipped at) and one `syncDetails` row
    per agent."""
    account_id = account_of(call)
    creative_id = call.params.get("creative_id")
    change = (await library.creatives(call.app, account_id, [creative_id])).get(creative_id) \
        if isinstance(creative_id, str) else None
    if change is None:
        raise AdcpRequestError(404, "REFERENCE_NOT_FOUND", f"No creative {creative_id} in this library.", field="creative_id")
    rows = (await library.status_rows(call.app, account_id, [change.creative_id]))[change.creative_id]
    directory, counts = call.app[keys.AGENTS], summary(rows)
    campaigns = (await call.app[keys.CAMPAIGNS].campaigns_of(account_id, [change.creative_id]))[change.creative_id]
    synced_at = [r.last_sync_at for r in rows if r.last_sync_at is not None]
    return {
        "creative": as_adcp(change, include_assignments=True),
        "campaign_ids": public_all(campaigns),
        "syncStatusSummary": {"totalRelevantAgents": len(rows) - counts["skipped"], **counts,
                              "lastSyncDate": max(synced_at).isoformat() if synced_at else None},
        "syncDetails": [{
            "salesAgentId": public(r.sales_agent_id),
            "salesAgentName": _agent_name(directory, r.sales_agent_id),
            "status": r.sync_status.value.lower(), "approvalStatus": r.approval_status,
            "rejectionReason": r.rejection_reason, "skipReason": r.skip_reason, "lastError": r.last_error,
            "contentVersionSynced": r.content_version_synced,
            "syncDate": r.last_sync_at.isoformat() if r.last_sync_at else None} for r in rows],
    }


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    account = {"type": "object", "properties": {"account_id": {"type": "string"}}, "required": ["account_id"]}
    return {"type": "object", "properties": {"account": account, **properties}, "required": ["account", *required]}


_AGENT_PROPERTIES = {
    "sales_agent_id": {"type": "string"}, "name": {"type": "string"}, "agent_url": {"type": "string", "format": "uri"},
    "protocol": {"type": "string", "enum": ["mcp", "a2a"]},
    "auth": {"type": "object", "properties": {"token": {"type": "string"},
                                              "header": {"type": "string", "enum": list(_AUTH_HEADERS)}}},
    "formats": {"type": "array", "items": {"type": "string"},
                "description": "Declared formats: format ids, format kinds or MIME types (video/*). Else discovered."},
    "webhook_secret": {"type": "string", "minLength": 32,
                       "description": "Shared secret of the agent's legacy HMAC-SHA256 webhooks to us."},
    "webhook_jwks": {"type": "object", "description": "Public keys (JWKS) of the agent's RFC 9421 webhooks to us."},
    "headers": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "Extra static headers on every call to the agent (e.g. x-adcp-tenant): sealed like the "
                               "token; list_sales_agents shows their names only."},
}

OPERATIONS = (
    Operation("register_sales_agent", "Register a sales agent (MCP or A2A) for an account; it is then discovered "
              "(AdCP versions, formats) by the worker that owns it. Secrets are stored sealed and never shown.",
              _schema(_AGENT_PROPERTIES, ["name", "agent_url"]), register_sales_agent, tags=("sales agents",)),
    Operation("update_sales_agent", "Change a sales agent's name, address, protocol, auth, formats or webhook secret.",
              _schema(_AGENT_PROPERTIES, ["sales_agent_id"]), update_sales_agent, tags=("sales agents",)),
    Operation("remove_sales_agent", "Remove a sales agent: nothing more is sent to it.",
              _schema({"sales_agent_id": {"type": "string"}}, ["sales_agent_id"]), remove_sales_agent, tags=("sales agents",)),
    Operation("list_sales_agents", "The account's sales agents and what discovery learnt about them.",
              _schema({}, []), list_sales_agents, tags=("sales agents",)),
    Operation("sync_creative_to_sales_agents", "Sync a creative (creative_id) or up to 100 (creative_ids) to the given "
              "sales agents, or, by default, to the compatible agents of the brand agent's active campaigns and of its "
              "tactics of the last 30 days (campaign_id: that campaign's); answers what was queued and what was "
              "skipped, and why.",
              _schema({"creative_id": {"type": "string"},
                       "creative_ids": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_CREATIVES},
                       "sales_agent_ids": {"type": "array", "items": {"type": "string"},
                                           "description": "Explicit agents: override auto-detection."},
                       "campaign_id": {"type": "string", "description": "Only this campaign's active tactics' agents."},
                       "brand_agent_id": {"type": "string",
                                          "description": "Auto-detect from this brand agent's last 30 days of tactics."}},
                      []),
              sync_creative_to_sales_agents, tags=("sync",)),
    Operation("get_creative_sync_status", "Where creatives stand with each sales agent: counts and one row per agent.",
              _schema({"creative_id": {"type": "string"},
                       "creative_ids": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_CREATIVES}}, []),
              get_creative_sync_status, tags=("sync",)),
    Operation("get_creative", "A creative with its syncStatusSummary (relevant agents, approved, pending, rejected, failed, "
              "skipped, last sync date) and syncDetails (one row per sales agent).",
              _schema({"creative_id": {"type": "string"}}, ["creative_id"]), get_creative, tags=("sync",)),
)
