"""An account's campaign entities as their owner keeps and reads them: table `campaign_entities`
(one row per live entity), whose store (streams.stores) also keeps each account's ordered keys:
its brand agents, campaigns and tactics by kind, a campaign's tactics, a campaign's assigned
creatives and a creative's campaigns, and per account its number of rows (which accounts a
partition holds). A campaign's assignments can be as many as the library: they are read as a
range of keys, never held in memory.

Writes: the campaigns processor (streams.campaigns.agent). Reads: the health processor and the
matcher (this worker's partitions), and the owner's queries (streams.campaigns.reads).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from streams import stores
from streams.runtime import stored_row
from topics.events import CampaignEntity, EntityType
from topics.ids import account_in

SEP = "\x1f"  # between a key's parts; never in an id (ids with control characters are refused)
_HIGHEST = "\U0010ffff"  # above every character (and, in UTF-8, every byte sequence) of a key's tail
_BY_KIND, _TACTICS, _ASSIGNED, _CAMPAIGNS_OF = "e", "t", "a", "c"
ROWS = "rows"  # a count of every account: its rows


def row_key(entity: CampaignEntity) -> str:
    return entity_key(entity.account_id, entity.entity_type.value, entity.entity_id)


def entity_key(account_id: str, kind: str, entity_id: str) -> str:
    return f"{account_id}{SEP}{kind}{SEP}{entity_id}"


def _prefix(account_id: str, *parts: str) -> str:
    return SEP.join((account_id, *parts)) + SEP


def index_keys(entity: CampaignEntity) -> list[str]:
    account, kind = entity.account_id, entity.entity_type
    if kind is EntityType.ASSIGNMENT:
        return [_prefix(account, _ASSIGNED, str(entity.campaign_id)) + str(entity.creative_id),
                _prefix(account, _CAMPAIGNS_OF, str(entity.creative_id)) + str(entity.campaign_id)]
    keys = [_prefix(account, _BY_KIND, kind.value) + entity.entity_id]
    if kind is EntityType.TACTIC:
        keys.append(_prefix(account, _TACTICS, str(entity.campaign_id)) + entity.entity_id)
    return keys


def _counted(entity: CampaignEntity) -> dict[str, int]:
    return {ROWS: 1}


class CampaignIndex(stores.TextEntries):
    """The campaign_entities table's derivation (streams.stores). An index row holds nothing: its
    key says it all (the last part is the id it leads to)."""

    @staticmethod
    def account_of(key: str) -> str:
        return key.split(SEP, 1)[0]

    @staticmethod
    def moved(counts: Mapping[str, int], changes: Iterable[tuple[CampaignEntity | None, CampaignEntity | None]]
              ) -> tuple[list[tuple[str, str | None]], dict[str, int]]:
        return stores.moved_rows(counts, changes, lambda entity: dict.fromkeys(index_keys(entity), ""), _counted)


stores.derive("campaign_entities", CampaignIndex())


class CampaignStore:
    """What the owner of an account reads of its campaigns (every method: an account owned here)."""

    def __init__(self, table: Any, partition_of: Callable[[str], int]) -> None:
        self._table, self.partition_of = table, partition_of
        self.changed = asyncio.Event()  # set (and replaced) after every write: what a trigger waits for
        self.applied: dict[int, int] = {}  # partition -> the offset of the last campaigns record applied

    def written(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def get(self, kind: str, entity_id: str) -> CampaignEntity | None:
        account_id = account_in(entity_id)
        return stored_row(self._table, entity_key(account_id, kind, entity_id)) if account_id is not None else None

    def _ids(self, account_id: str, *parts: str) -> Iterator[str]:
        start = _prefix(account_id, *parts)
        for key, _ in self._table.data.index_range(self.partition_of(account_id), start, start + _HIGHEST, False):
            yield key[len(start):]

    def of_account(self, kind: str, account_id: str) -> list[CampaignEntity]:
        return [e for i in self._ids(account_id, _BY_KIND, kind) if (e := self.get(kind, i)) is not None]

    def tactics(self, campaign_id: str) -> list[CampaignEntity]:
        account_id = account_in(campaign_id) or ""
        return [t for i in self._ids(account_id, _TACTICS, campaign_id)
                if (t := self.get(EntityType.TACTIC.value, i)) is not None]

    def assigned(self, campaign_id: str) -> list[str]:
        return list(self._ids(account_in(campaign_id) or "", _ASSIGNED, campaign_id))

    def campaigns_of(self, account_id: str, creative_id: str) -> list[str]:
        return list(self._ids(account_id, _CAMPAIGNS_OF, creative_id))

    def accounts(self, partition: int) -> list[str]:
        """The accounts with campaign entities in `partition`."""
        return self._table.data.accounts(partition, lambda account_id: self.partition_of(account_id) == partition)
