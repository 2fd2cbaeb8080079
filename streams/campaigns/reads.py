"""The campaigns' reads, answered by the worker that owns the account (streams/owners.py does the
routing checks; gateway/entities.py and the status processor ask):

  POST /owners/campaigns/get            entities by kind and id
  POST /owners/campaigns/list           the account's brand agents, campaigns or tactics
  POST /owners/campaigns/campaign       a campaign with its tactics and assigned creatives
  POST /owners/campaigns/of-creatives   the campaigns of creatives (with their tactics and creatives if asked)
  POST /owners/campaigns/overview       every campaign of the account (of a brand agent) with its tactics,
                                        assigned creatives and last published health (list_campaigns)

Read-your-writes: a query may name `after`, the offset of the writer's last record on the
account's partition; the owner answers once it has applied it (or 503 after a while: the caller
retries, streams/owner_client.py).

Reads: the campaign_entities table and its index (streams.campaigns.store), the campaign_health
table. Writes: nothing.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from faust.types import TP

from streams.campaigns.store import CampaignStore
from streams.owner_client import Owners
from streams.owners import Recovering, owner_query
from streams.runtime import stored_row
from topics.events import CampaignEntity, CampaignHealth, EntityType

CATCH_UP_S = 5.0  # how long a read waits for the writer's record before answering 503


def _json(record: Any) -> dict[str, Any] | None:
    return record.model_dump(mode="json") if record is not None else None


def campaign_detail(store: CampaignStore, campaign: CampaignEntity) -> dict[str, Any]:
    return {"campaign": _json(campaign), "tactics": [_json(t) for t in store.tactics(campaign.entity_id)],
            "assigned": store.assigned(campaign.entity_id)}


@dataclass(frozen=True)
class CampaignDetail:
    campaign: CampaignEntity
    tactics: list[CampaignEntity]
    assigned: list[str]
    health: CampaignHealth | None = None  # (the overview's)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> CampaignDetail:
        health = body.get("health")
        return cls(CampaignEntity.model_validate(body["campaign"]), [CampaignEntity.model_validate(t) for t in body["tactics"]],
                   list(body["assigned"]), CampaignHealth.model_validate(health) if health is not None else None)


async def campaigns_of(owners: Owners, account_id: str, creative_ids: list[str]) -> dict[str, list[CampaignDetail]]:
    """The campaigns of each creative, with their tactics and creatives, from the account's owner."""
    if not creative_ids:
        return {}
    [answer] = await owners.ask("/owners/campaigns/of-creatives", "campaigns", [account_id],
                                lambda _: {"account_id": account_id, "creative_ids": creative_ids, "detail": True})
    detail = {c: CampaignDetail.from_json(d) for c, d in answer["detail"].items()}
    return {creative: [detail[c] for c in ids if c in detail] for creative, ids in answer["campaigns"].items()}


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    store: CampaignStore = pipeline.campaigns
    health = pipeline.tables["campaign_health"]  # kept on the account's partition (streams.health)
    topic_name = pipeline.topics["campaigns"].get_topic_name()

    def applied(partition: int) -> int:
        committed = pipeline.app.consumer.committed_offset(TP(topic_name, partition))
        return max(store.applied.get(partition, -1), (committed or 0) - 1)

    async def caught_up(body: dict[str, Any]) -> None:
        after = body.get("after")
        if after is None:
            return
        partition = store.partition_of(str(body["account_id"]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_S
        while applied(partition) < int(after):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Recovering(f"campaigns partition {partition} has not reached offset {after}")
            try:
                await asyncio.wait_for(store.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def get(body: dict[str, Any]) -> dict[str, Any]:
        await caught_up(body)
        return {"entities": [_json(store.get(str(kind), str(i))) for kind, i in body["refs"]]}

    async def listed(body: dict[str, Any]) -> dict[str, Any]:
        await caught_up(body)
        return {"entities": [_json(e) for e in store.of_account(str(body["kind"]), str(body["account_id"]))]}

    async def campaign(body: dict[str, Any]) -> dict[str, Any]:
        await caught_up(body)
        found = store.get(EntityType.CAMPAIGN.value, str(body["campaign_id"]))
        return campaign_detail(store, found) if found is not None else {"campaign": None, "tactics": [], "assigned": []}

    async def of_creatives(body: dict[str, Any]) -> dict[str, Any]:
        await caught_up(body)
        account_id = str(body["account_id"])
        campaigns = {str(c): store.campaigns_of(account_id, str(c)) for c in body["creative_ids"]}
        answer: dict[str, Any] = {"campaigns": campaigns}
        if body.get("detail"):
            ids = sorted({c for found in campaigns.values() for c in found})
            answer["detail"] = {c: campaign_detail(store, found) for c in ids
                                if (found := store.get(EntityType.CAMPAIGN.value, c)) is not None}
        return answer

    async def overview(body: dict[str, Any]) -> dict[str, Any]:
        await caught_up(body)
        brand = body.get("brand_agent_id")
        return {"campaigns": [{**campaign_detail(store, c), "health": _json(stored_row(health, c.entity_id))}
                              for c in store.of_account(EntityType.CAMPAIGN.value, str(body["account_id"]))
                              if brand is None or c.brand_agent_id == brand]}

    account = lambda body: [str(body["account_id"])]  # noqa: E731
    for path, handle in (("get", get), ("list", listed), ("campaign", campaign), ("of-creatives", of_creatives),
                         ("overview", overview)):
        owner_query(pipeline, f"/owners/campaigns/{path}", "campaigns", account, handle)
