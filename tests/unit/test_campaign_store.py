"""An account's campaign entities as their owner keeps them (streams.campaigns.store): the ordered
keys the store derives (by kind, a campaign's tactics and creatives, a creative's campaigns) and
the counts, as entities come, change and go; no account sees another's."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.campaigns.store import CampaignStore, row_key
from tests.support import MemoryTable
from topics.events import CampaignEntity, EntityType

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def entity(kind: EntityType, entity_id: str, account: str = "acct", **fields) -> CampaignEntity:
    return CampaignEntity(entity_type=kind, entity_id=f"{account}~{entity_id}", account_id=account, updated_at=NOW,
                          created_at=NOW, **fields)


def assignment(campaign: str, creative: str, account: str = "acct", deleted: bool = False) -> CampaignEntity:
    return CampaignEntity(entity_type=EntityType.ASSIGNMENT, entity_id=f"{account}~{campaign}/{creative}", account_id=account,
                          campaign_id=f"{account}~{campaign}", creative_id=creative, deleted=deleted, updated_at=NOW)


def stored(*entities: CampaignEntity) -> tuple[MemoryTable, CampaignStore]:
    table = MemoryTable("campaign_entities")
    for e in entities:
        table.put(row_key(e), None if e.deleted else e)
    return table, CampaignStore(table, lambda account_id: 0)


def test_an_accounts_entities_are_read_by_kind_by_campaign_and_by_creative():
    _, store = stored(
        entity(EntityType.BRAND_AGENT, "brand", name="Acme"),
        entity(EntityType.CAMPAIGN, "holiday", campaign_id="acct~holiday", brand_agent_id="acct~brand"),
        entity(EntityType.CAMPAIGN, "holiday-2", campaign_id="acct~holiday-2", brand_agent_id="acct~brand"),
        entity(EntityType.TACTIC, "t1", campaign_id="acct~holiday", sales_agent_id="acct~news"),
        entity(EntityType.TACTIC, "t2", campaign_id="acct~holiday-2", sales_agent_id="acct~news"),
        assignment("holiday", "c1"), assignment("holiday", "c2"), assignment("holiday-2", "c1"),
        entity(EntityType.CAMPAIGN, "holiday", account="other", campaign_id="other~holiday"),
        assignment("holiday", "c1", account="other"))
    assert [c.entity_id for c in store.of_account("CAMPAIGN", "acct")] == ["acct~holiday", "acct~holiday-2"]
    assert [b.name for b in store.of_account("BRAND_AGENT", "acct")] == ["Acme"]
    assert [t.entity_id for t in store.tactics("acct~holiday")] == ["acct~t1"]  # not holiday-2's (a longer id)
    assert store.assigned("acct~holiday") == ["c1", "c2"]
    assert store.campaigns_of("acct", "c1") == ["acct~holiday", "acct~holiday-2"]
    assert store.get("CAMPAIGN", "acct~holiday").brand_agent_id == "acct~brand"
    assert [c.entity_id for c in store.of_account("CAMPAIGN", "other")] == ["other~holiday"]
    assert store.campaigns_of("other", "c1") == ["other~holiday"] and store.get("CAMPAIGN", "other~nothing") is None
    assert store.accounts(0) == ["acct", "other"]


def test_an_unassignment_and_a_changed_entity_leave_nothing_stale_behind():
    table, store = stored(entity(EntityType.CAMPAIGN, "holiday", campaign_id="acct~holiday"),
                          assignment("holiday", "c1"), assignment("holiday", "c2"),
                          entity(EntityType.TACTIC, "t1", campaign_id="acct~holiday", status="active"))
    gone = assignment("holiday", "c1", deleted=True)
    table.put(row_key(gone), None)
    table.put(row_key(entity(EntityType.TACTIC, "t1", campaign_id="acct~holiday", status="paused")),
              entity(EntityType.TACTIC, "t1", campaign_id="acct~holiday", status="paused"))
    assert store.assigned("acct~holiday") == ["c2"]
    assert store.campaigns_of("acct", "c1") == []
    assert [t.status for t in store.tactics("acct~holiday")] == ["paused"]
    table.put(row_key(assignment("holiday", "c2")), None)
    table.put(row_key(entity(EntityType.TACTIC, "t1")), None)
    table.put(row_key(entity(EntityType.CAMPAIGN, "holiday")), None)
    assert not table.data.derived.index and store.accounts(0) == []  # nothing left, not even counts
