"""Who may touch what: the account a request acts for, and the entities it names, looked up
within that account only. Ids are per account (topics.ids): the id a request names is scoped to
the caller's account before any lookup, so another account's entity cannot even be addressed."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gateway import keys
from gateway.errors import AdcpRequestError, invalid
from gateway.operations import Call
from streams.sync.outbound import OutboundRefused, Policy, check_target
from topics.events import CampaignEntity, EntityType, SalesAgent
from topics.ids import ID_PATTERN, scoped

MAX_CREATIVES = 100


def account_of(call: Call) -> str:
    account = call.params.get("account")
    if not isinstance(account, dict) or not isinstance(account.get("account_id"), str) or not account["account_id"]:
        raise AdcpRequestError(400, "ACCOUNT_REQUIRED", "account.account_id is required.", field="account.account_id")
    call.principal.require_account(account["account_id"])
    return account["account_id"]


def visible_to(agent: SalesAgent | None, account_id: str) -> bool:
    return agent is not None and not agent.deleted and agent.account_id == account_id


def entity_id_of(value: Any, name: str) -> str:
    """An id as a request names it: letters, digits, '.', '_' and '-' (at most 100)."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise invalid(f"{name}: letters, digits, '.', '_' and '-' (at most 100).", name)
    return value


def agent_of(call: Call, agent_id: Any, account_id: str, name: str = "sales_agent_id") -> SalesAgent:
    """The account's (live) sales agent a request names; 404 like a missing one otherwise."""
    agent = call.app[keys.AGENTS].get(scoped(account_id, agent_id)) if isinstance(agent_id, str) else None
    if not visible_to(agent, account_id):
        raise AdcpRequestError(404, "REFERENCE_NOT_FOUND", f"No sales agent {agent_id} in this account.", field=name)
    return agent


def creative_ids_of(params: dict[str, Any]) -> list[str]:
    """creative_id, or creative_ids (1 to 100), deduplicated in order."""
    ids = params.get("creative_ids")
    if ids is None and isinstance(params.get("creative_id"), str) and params["creative_id"]:
        ids = [params["creative_id"]]
    if not isinstance(ids, list) or not ids or len(ids) > MAX_CREATIVES or not all(isinstance(i, str) and i for i in ids):
        raise invalid(f"creative_id, or creative_ids: 1 to {MAX_CREATIVES} ids.", "creative_ids")
    return list(dict.fromkeys(ids))


async def owned(call: Call, kind: EntityType, name: str, account_id: str) -> CampaignEntity:
    """The entity the request names, if it is this account's (404 otherwise: no hint of others')."""
    entity_id = call.params.get(name)
    entity = (await call.app[keys.CAMPAIGNS].get(account_id, kind.value, scoped(account_id, entity_id))
              if isinstance(entity_id, str) and ID_PATTERN.match(entity_id) else None)
    if entity is None or entity.account_id != account_id:
        raise AdcpRequestError(404, "REFERENCE_NOT_FOUND", f"No {kind.value.lower().replace('_', ' ')} {entity_id} in this account.",
                               field=name)
    return entity


@contextmanager
def claim(call: Call, kind: str, entity_id: str, shown: str, name: str) -> Iterator[None]:
    """Held while an entity's creation is published, so that two requests of this gateway cannot
    both create it (across accounts, ids cannot collide at all: they are scoped)."""
    claims = call.app[keys.CLAIMS]
    if (kind, entity_id) in claims:
        raise AdcpRequestError(409, "CONFLICT", f"{name} {shown} is being created by another request of this account.",
                               field=name)
    claims.add((kind, entity_id))
    try:
        yield
    finally:
        claims.discard((kind, entity_id))


async def target_url(call: Call, url: Any, name: str) -> str:
    """A URL the system will send requests to (a sales agent, a webhook): refused with the field
    named when the outbound policy forbids it (streams.sync.outbound)."""
    try:
        await check_target(url, Policy(allow_private=call.app[keys.SETTINGS].allow_private_targets))
    except OutboundRefused as refused:
        raise invalid(f"{name} is not an allowed target: {refused}.", name) from None
    return url
