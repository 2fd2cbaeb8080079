"""Brand agents, campaigns, tactics and creative assignments, as operations of the registry (MCP
tools and REST routes alike), account-scoped, and the sync triggers they fire.

Entities are published to the compacted campaigns topic (on the partition of their account) and
read from the worker that owns the account (gateway/entities.py). Assigning creatives to a campaign syncs them to
the compatible sales agents of its active tactics; creating (or activating) a tactic syncs the
campaign's creatives to its agent. A trigger never blocks its primary operation: the entity is
written first, and the answer carries the primary result plus a sync summary (queued, skipped
with reasons, or why nothing could be queued).
"""
from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from gateway import keys, library
from gateway.errors import AdcpRequestError, invalid
from gateway.notifications import campaign_counts, health_view
from gateway.operations import Call, Operation
from gateway.scope import account_of, agent_of, claim, creative_ids_of, entity_id_of, owned, visible_to
from gateway.syncing import new_trigger, trigger_sync
from streams.notify.inbox import CampaignScope
from topics.catalogue import topic
from topics.events import CampaignEntity, EntityType, SyncTrigger
from topics.ids import public, scoped
CAMPAIGN_STATUSES = ("draft", "active", "paused", "completed", "archived")
TACTIC_STATUSES = ("draft", "active", "paused", "completed", "archived")
_NO_SYNC_STATUSES = ("completed", "archived")  # a campaign that will not run again gets nothing new


def entity_view(entity: CampaignEntity) -> dict[str, Any]:
    attributes = json.loads(entity.attributes_json) if entity.attributes_json else {}
    common = {"account_id": entity.account_id, "name": entity.name, "status": entity.status,
              "created_at": entity.created_at.isoformat() if entity.created_at else None,
              "updated_at": entity.updated_at.isoformat()}
    if entity.entity_type is EntityType.BRAND_AGENT:
        return {"brand_agent_id": public(entity.entity_id), **common}
    if entity.entity_type is EntityType.CAMPAIGN:
        return {"campaign_id": public(entity.entity_id), "brand_agent_id": public(entity.brand_agent_id), **common,
                "start_date": attributes.get("start_date"), "end_date": attributes.get("end_date")}
    return {"tactic_id": public(entity.entity_id), "campaign_id": public(entity.campaign_id),
            "sales_agent_id": public(entity.sales_agent_id),
            "media_product_id": attributes.get("media_product_id"), **common}


async def _publish(call: Call, entity: CampaignEntity) -> None:
    app = call.app
    settings, codecs, broker = app[keys.SETTINGS], app[keys.CODECS], app[keys.BROKER]
    entities = app[keys.CAMPAIGNS]
    written = await broker.publish(topic("campaigns").full_name(settings.topic_prefix),
                                   key=codecs.key("campaigns").encode(entity.key), value=codecs.value("campaigns").encode(entity),
                                   partition=entities.partition_of(entity.account_id))
    if written is not None:
        entities.wrote(written.partition, written.offset)


@asynccontextmanager
async def _new_id(call: Call, account_id: str, name: str, kind: EntityType, prefix: str) -> AsyncIterator[str]:
    """The scoped id of an entity being created: the request's (within its account) or a new one.
    Held while the creation is published, so that two requests of this gateway cannot both create it."""
    public_id = entity_id_of(call.params.get(name) or f"{prefix}-{uuid.uuid4().hex[:12]}", name)
    entity_id = scoped(account_id, public_id)
    with claim(call, kind.value, entity_id, public_id, name):
        if await call.app[keys.CAMPAIGNS].get(account_id, kind.value, entity_id) is not None:
            raise AdcpRequestError(409, "CONFLICT", f"{name} {public_id} already exists in this account; choose another "
                                   "or leave it out.", field=name)
        yield entity_id


def _name(params: dict[str, Any], required: bool) -> str | None:
    name = params.get("name")
    if name is None and not required:
        return None
    if not isinstance(name, str) or not name.strip():
        raise invalid("name is required: a non-empty string.", "name")
    return name.strip()[:200]


def _status(params: dict[str, Any], allowed: tuple[str, ...], default: str | None) -> str | None:
    status = params.get("status", default)
    if status is not None and status not in allowed:
        raise invalid(f"status must be one of {', '.join(allowed)}.", "status")
    return status


def _date(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{name} must be an ISO 8601 date or date-time.", name) from None
    return str(value)


# -- sync triggers --------------------------------------------------------------------------------
async def _sync(call: Call, account_id: str, campaign: CampaignEntity, creative_ids: list[str], tactics: list[CampaignEntity],
                trigger_kind: SyncTrigger, tactic_id: str | None = None) -> dict[str, Any]:
    """Sync `creative_ids` to the agents of the active `tactics`, through the matcher. Never raises:
    the primary operation has happened, and the summary says what did not."""
    if campaign.status in _NO_SYNC_STATUSES:
        return {"queued": 0, "skipped": 0, "creatives": [], "note": f"Campaign is {campaign.status}: nothing synced."}
    directory, agents, unknown = call.app[keys.AGENTS], {}, []
    for tactic in tactics:
        if tactic.status != "active":
            continue
        agent = directory.get(str(tactic.sales_agent_id))
        if visible_to(agent, account_id):
            agents[agent.sales_agent_id] = agent
        else:
            unknown.append(public(str(tactic.sales_agent_id)))
    summary: dict[str, Any] = {"queued": 0, "skipped": 0, "creatives": []}
    if unknown:
        summary["unavailable_sales_agents"] = sorted(set(unknown))
    if not agents or not creative_ids:
        summary["note"] = "No active tactic with a registered sales agent." if not agents else "No creative to sync."
        return summary
    trigger = new_trigger(account_id, trigger_kind, list(creative_ids), sales_agent_ids=sorted(agents),
                          campaign_id=campaign.entity_id, tactic_id=tactic_id)
    try:
        result = await trigger_sync(call, trigger)
    except AdcpRequestError as error:  # e.g. the broker is briefly away: the primary result stands
        return {**summary, "error": {"code": error.code, "message": error.message, "recovery": error.recovery}}
    if result is None:
        return {**summary, "status": "submitted", "task_id": trigger.trigger_id,
                "note": "The matcher is queueing it: get_task_status has what went where."}
    answers = json.loads(result.result_json)["creatives"]
    if not answers:
        summary["note"] = "No creative to sync."
    summary.update(queued=sum(len(a["queued"]) for a in answers), skipped=sum(len(a["skipped"]) for a in answers),
                   creatives=answers)
    return summary


# -- brand agents ---------------------------------------------------------------------------------
async def create_brand_agent(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    now, name = datetime.now(UTC), _name(call.params, True)
    async with _new_id(call, account_id, "brand_agent_id", EntityType.BRAND_AGENT, "ba") as entity_id:
        entity = CampaignEntity(entity_type=EntityType.BRAND_AGENT, entity_id=entity_id, account_id=account_id,
                                brand_agent_id=entity_id, name=name, status="active", created_at=now, updated_at=now)
        await _publish(call, entity)
    return {"brand_agent": entity_view(entity)}


async def list_brand_agents(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    found = sorted(await call.app[keys.CAMPAIGNS].of_account(account_id, EntityType.BRAND_AGENT.value), key=lambda e: str(e.name))
    return {"brand_agents": [entity_view(e) for e in found]}


# -- campaigns ------------------------------------------------------------------------------------
def _attributes(params: dict[str, Any], current: dict[str, Any], names: tuple[str, ...]) -> str | None:
    attributes = dict(current)
    for name in names:
        if name in params:
            attributes[name] = _date(params, name) if name.endswith("_date") else params[name]
    return json.dumps(attributes, sort_keys=True) if attributes else None


async def create_campaign(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    brand = await owned(call, EntityType.BRAND_AGENT, "brand_agent_id", account_id)
    now, name = datetime.now(UTC), _name(call.params, True)
    status, attributes = _status(call.params, CAMPAIGN_STATUSES, "active"), _attributes(call.params, {}, ("start_date", "end_date"))
    async with _new_id(call, account_id, "campaign_id", EntityType.CAMPAIGN, "cmp") as entity_id:
        entity = CampaignEntity(entity_type=EntityType.CAMPAIGN, entity_id=entity_id, account_id=account_id,
                                brand_agent_id=brand.entity_id, campaign_id=entity_id, name=name, status=status,
                                attributes_json=attributes, created_at=now, updated_at=now)
        await _publish(call, entity)
    return {"campaign": entity_view(entity)}


async def update_campaign(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    current = await owned(call, EntityType.CAMPAIGN, "campaign_id", account_id)
    attributes = json.loads(current.attributes_json) if current.attributes_json else {}
    updated = current.model_copy(update={
        "name": _name(call.params, False) or current.name, "status": _status(call.params, CAMPAIGN_STATUSES, current.status),
        "attributes_json": _attributes(call.params, attributes, ("start_date", "end_date")), "updated_at": datetime.now(UTC)})
    await _publish(call, updated)
    return {"campaign": entity_view(updated)}


async def list_campaigns(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    brand_agent_id = call.params.get("brand_agent_id")
    brand = scoped(account_id, str(brand_agent_id)) if brand_agent_id is not None else None
    campaigns = sorted(await call.app[keys.CAMPAIGNS].overview(account_id, brand), key=lambda c: str(c.campaign.name))
    scopes = [CampaignScope(c.campaign.entity_id, frozenset(c.assigned), frozenset(str(t.sales_agent_id) for t in c.tactics))
              for c in campaigns]
    counts = await campaign_counts(call.app, account_id, scopes)
    return {"campaigns": [{**entity_view(c.campaign), "tactics": len(c.tactics),
                           "active_tactics": sum(1 for t in c.tactics if t.status == "active"), "creatives": len(c.assigned),
                           "syncHealth": health_view(c.health),
                           "notifications": counts.get(c.campaign.entity_id, {"unread": 0, "highPriority": 0})}
                          for c in campaigns]}


# -- tactics --------------------------------------------------------------------------------------
async def create_tactic(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    campaign = await owned(call, EntityType.CAMPAIGN, "campaign_id", account_id)
    agent = agent_of(call, call.params.get("sales_agent_id"), account_id)
    now, name = datetime.now(UTC), _name(call.params, True)
    status, attributes = _status(call.params, TACTIC_STATUSES, "active"), _attributes(call.params, {}, ("media_product_id",))
    async with _new_id(call, account_id, "tactic_id", EntityType.TACTIC, "tac") as entity_id:
        tactic = CampaignEntity(entity_type=EntityType.TACTIC, entity_id=entity_id, account_id=account_id,
                                brand_agent_id=campaign.brand_agent_id, campaign_id=campaign.entity_id,
                                sales_agent_id=agent.sales_agent_id, name=name, status=status, attributes_json=attributes,
                                created_at=now, updated_at=now)
        await _publish(call, tactic)
    creative_ids = (await call.app[keys.CAMPAIGNS].campaign(account_id, campaign.entity_id)).assigned
    sync = await _sync(call, account_id, campaign, creative_ids, [tactic], SyncTrigger.NEW_TACTIC, tactic.entity_id)
    return {"tactic": entity_view(tactic), "sync": sync}


async def update_tactic(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    current = await owned(call, EntityType.TACTIC, "tactic_id", account_id)
    updated = current.model_copy(update={"name": _name(call.params, False) or current.name,
                                         "status": _status(call.params, TACTIC_STATUSES, current.status),
                                         "updated_at": datetime.now(UTC)})
    await _publish(call, updated)
    answer: dict[str, Any] = {"tactic": entity_view(updated)}
    if updated.status == "active" and current.status != "active":  # (re)activated: like a new tactic
        detail = await call.app[keys.CAMPAIGNS].campaign(account_id, str(updated.campaign_id))
        if detail is not None:
            answer["sync"] = await _sync(call, account_id, detail.campaign, detail.assigned, [updated], SyncTrigger.NEW_TACTIC,
                                         updated.entity_id)
    return answer


async def list_tactics(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    campaign = await owned(call, EntityType.CAMPAIGN, "campaign_id", account_id)
    tactics = sorted((await call.app[keys.CAMPAIGNS].campaign(account_id, campaign.entity_id)).tactics,
                     key=lambda t: str(t.name))
    return {"tactics": [entity_view(t) for t in tactics]}


# -- assignments ----------------------------------------------------------------------------------
def _assignment(campaign: CampaignEntity, creative_id: str, now: datetime, deleted: bool = False) -> CampaignEntity:
    return CampaignEntity(entity_type=EntityType.ASSIGNMENT, entity_id=f"{campaign.entity_id}/{creative_id}",
                          account_id=campaign.account_id, brand_agent_id=campaign.brand_agent_id, campaign_id=campaign.entity_id,
                          creative_id=creative_id, status="unassigned" if deleted else "assigned", deleted=deleted,
                          created_at=now, updated_at=now)


async def assign_creative(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    campaign = await owned(call, EntityType.CAMPAIGN, "campaign_id", account_id)
    ids = creative_ids_of(call.params)
    found = await library.creatives(call.app, account_id, ids)
    missing = [i for i in ids if i not in found or found[i].status == "archived"]
    if missing:
        raise AdcpRequestError(404, "REFERENCE_NOT_FOUND", f"No creative {', '.join(missing)} in this library.",
                               field="creative_ids" if "creative_ids" in call.params else "creative_id")
    now = datetime.now(UTC)
    for creative_id in ids:
        await _publish(call, _assignment(campaign, creative_id, now))
    tactics = (await call.app[keys.CAMPAIGNS].campaign(account_id, campaign.entity_id)).tactics
    sync = await _sync(call, account_id, campaign, ids, tactics, SyncTrigger.CAMPAIGN_ASSIGNMENT)
    return {"campaign_id": public(campaign.entity_id), "assigned": ids, "sync": sync}


async def unassign_creative(call: Call) -> dict[str, Any]:
    account_id = account_of(call)
    campaign = await owned(call, EntityType.CAMPAIGN, "campaign_id", account_id)
    ids = creative_ids_of(call.params)
    assigned = set((await call.app[keys.CAMPAIGNS].campaign(account_id, campaign.entity_id)).assigned)
    now = datetime.now(UTC)
    for creative_id in ids:
        if creative_id in assigned:
            await _publish(call, _assignment(campaign, creative_id, now, deleted=True))
    return {"campaign_id": public(campaign.entity_id), "unassigned": [i for i in ids if i in assigned],
            "not_assigned": [i for i in ids if i not in assigned]}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    account = {"type": "object", "properties": {"account_id": {"type": "string"}}, "required": ["account_id"]}
    return {"type": "object", "properties": {"account": account, **properties}, "required": ["account", *required]}


_TEXT = {"type": "string"}
_CREATIVES = {"creative_id": _TEXT, "creative_ids": {"type": "array", "items": _TEXT, "maxItems": 100}}
_CAMPAIGN = {"brand_agent_id": _TEXT, "campaign_id": _TEXT, "name": _TEXT, "status": {"type": "string", "enum": list(CAMPAIGN_STATUSES)},
             "start_date": {"type": "string", "format": "date-time"}, "end_date": {"type": "string", "format": "date-time"}}
_TACTIC = {"campaign_id": _TEXT, "tactic_id": _TEXT, "name": _TEXT, "sales_agent_id": _TEXT, "media_product_id": _TEXT,
           "status": {"type": "string", "enum": list(TACTIC_STATUSES)}}
TAGS = ("campaigns",)

OPERATIONS = (
    Operation("create_brand_agent", "Create a brand agent (an advertiser) in an account.",
              _schema({"brand_agent_id": _TEXT, "name": _TEXT}, ["name"]), create_brand_agent, tags=TAGS),
    Operation("list_brand_agents", "The account's brand agents.", _schema({}, []), list_brand_agents, tags=TAGS),
    Operation("create_campaign", "Create a campaign of a brand agent (status active by default).",
              _schema(_CAMPAIGN, ["brand_agent_id", "name"]), create_campaign, tags=TAGS),
    Operation("update_campaign", "Change a campaign's name, status or dates.", _schema(_CAMPAIGN, ["campaign_id"]),
              update_campaign, tags=TAGS),
    Operation("list_campaigns", "The account's campaigns (optionally of one brand agent), with tactic and creative counts, "
              "their live syncHealth (healthy | syncing | warning | critical, synced tactics, approved creatives, last issue) and "
              "their unread and high-priority notifications.",
              _schema({"brand_agent_id": _TEXT}, []), list_campaigns, tags=TAGS),
    Operation("create_tactic", "Create a tactic of a campaign on a sales agent; the campaign's compatible creatives are "
              "synced to that agent in the background. Answers the tactic and what was queued and skipped.",
              _schema(_TACTIC, ["campaign_id", "name", "sales_agent_id"]), create_tactic, tags=TAGS),
    Operation("update_tactic", "Change a tactic's name or status; activating it syncs the campaign's creatives like a new one.",
              _schema(_TACTIC, ["tactic_id"]), update_tactic, tags=TAGS),
    Operation("list_tactics", "A campaign's tactics.", _schema({"campaign_id": _TEXT}, ["campaign_id"]), list_tactics, tags=TAGS),
    Operation("assign_creative", "Assign creatives to a campaign; each is synced to the compatible sales agents of the "
              "campaign's active tactics. Answers the assignment and what was queued and skipped.",
              _schema({"campaign_id": _TEXT, **_CREATIVES}, ["campaign_id"]), assign_creative, tags=TAGS),
    Operation("unassign_creative", "Unassign creatives from a campaign: the campaign's future syncs leave them out.",
              _schema({"campaign_id": _TEXT, **_CREATIVES}, ["campaign_id"]), unassign_creative, tags=TAGS),
)
