"""The account's brand agents, campaigns, tactics and assignments as the gateway reads them: asked
of the worker that owns the account (streams/campaigns/reads.py), never copied here.

Read-your-writes: the gateway remembers the offset of its last write on each partition of the
campaigns topic (eight numbers, nothing per entity) and names it in its reads of that partition's
accounts: the owner answers once it has applied that record, so a campaign created by one request
is there for the next one (a tactic of it, a sync naming it).
"""
from __future__ import annotations

from typing import Any

from streams.campaigns.reads import CampaignDetail
from streams.owner_client import Owners
from topics.catalogue import Codecs
from topics.events import CampaignEntity


class Entities:
    def __init__(self, owners: Owners, codecs: Codecs) -> None:
        self._owners, self.partition_of = owners, codecs.partition_of("campaigns")
        self._written: dict[int, int] = {}  # partition -> offset of this gateway's last write there

    def wrote(self, partition: int, offset: int) -> None:
        self._written[partition] = max(self._written.get(partition, -1), offset)

    async def _ask(self, path: str, account_id: str, **fields: Any) -> dict[str, Any]:
        body = {"account_id": account_id, "after": self._written.get(self.partition_of(account_id)), **fields}
        [answer] = await self._owners.ask(f"/owners/campaigns/{path}", "campaigns", [account_id], lambda _: body)
        return answer

    async def get(self, account_id: str, kind: str, entity_id: str) -> CampaignEntity | None:
        [found] = (await self._ask("get", account_id, refs=[[kind, entity_id]]))["entities"]
        return CampaignEntity.model_validate(found) if found is not None else None

    async def of_account(self, account_id: str, kind: str) -> list[CampaignEntity]:
        return [CampaignEntity.model_validate(e) for e in (await self._ask("list", account_id, kind=kind))["entities"]]

    async def campaign(self, account_id: str, campaign_id: str) -> CampaignDetail | None:
        answer = await self._ask("campaign", account_id, campaign_id=campaign_id)
        return CampaignDetail.from_json(answer) if answer["campaign"] is not None else None

    async def campaigns_of(self, account_id: str, creative_ids: list[str]) -> dict[str, list[str]]:
        return (await self._ask("of-creatives", account_id, creative_ids=creative_ids))["campaigns"]

    async def overview(self, account_id: str, brand_agent_id: str | None = None) -> list[CampaignDetail]:
        answer = await self._ask("overview", account_id, brand_agent_id=brand_agent_id)
        return [CampaignDetail.from_json(c) for c in answer["campaigns"]]
