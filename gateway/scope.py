"""Who may touch what: the account a request acts for, and the entities it names, looked up
within that account only (another account's entity is answered 404, like a missing one)."""
from __future__ import annotations

from typing import Any

from gateway import keys
from gateway.errors import AdcpRequestError, invalid
from gateway.operations import Call
from topics.events import CampaignEntity, EntityType, SalesAgent

MAX_CREATIVES = 100


def account_of(call: Call) -> str:
    account = call.params.get("account")
    if not isinstance(account, dict) or not isinstance(account.get("account_id"), str) or not account["account_id"]:
        raise AdcpRequestError(400, "ACCOUNT_REQUIRED", "account.account_id is required.", field="account.account_id")
    call.principal.require_account(account["account_id"])
    return account["account_id"]


def visible_to(agent: SalesAgent | None, account_id: str) -> bool:
    return agent is not None and not agent.deleted and agent.account_id in (None, account_id)


def creative_ids_of(params: dict[str, Any]) -> list[str]:
    """creative_id, or creative_ids (1 to 100), deduplicated in order."""
    ids = params.get("creative_ids")
    if ids is None and isinstance(params.get("creative_id"), str) and params["creative_id"]:
        ids = [params["creative_id"]]
    if not isinstance(ids, list) or not ids or len(ids) > MAX_CREATIVES or not all(isinstance(i, str) and i for i in ids):
        raise invalid(f"creative_id, or creative_ids: 1 to {MAX_CREATIVES} ids.", "creative_ids")
    return list(dict.fromkeys(ids))


def owned(call: Call, kind: EntityType, name: str, account_id: str) -> CampaignEntity:
    """The entity the request names, if it is this account's (404 otherwise: no hint of others')."""
    entity_id = call.params.get(name)
    entity = call.app[keys.CAMPAIGNS].get(kind.value, entity_id) if isinstance(entity_id, str) else None
    if entity is None or entity.account_id != account_id:
        raise AdcpRequestError(404, "REFERENCE_NOT_FOUND", f"No {kind.value.lower().replace('_', ' ')} {entity_id} in this account.",
                               field=name)
    return entity
