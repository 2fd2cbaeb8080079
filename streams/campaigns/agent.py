"""The campaigns processor: keeps the campaign entities of the accounts of this worker's
partitions in table `campaign_entities` (streams.campaigns.store), and tells the health processor
which campaigns changed.

Reads: campaigns (compacted, keyed by entity, partitioned by account: written by the gateway).
Writes: the campaign_entities table (its store derives the account's ordered keys). A record on
another partition than its account's (written before campaigns were partitioned by account, or by
a producer that did not follow the catalogue) is a dead letter: its owner would never find it.
"""
from __future__ import annotations

from typing import Any

from streams.campaigns.store import CampaignStore, row_key
from streams.runtime import consume_batches
from topics.events import CampaignEntity

PROCESSOR = "campaigns"


class MisPartitioned(ValueError):
    pass


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    app, codecs = pipeline.app, pipeline.codecs
    partition_of = codecs.partition_of("campaigns")
    store = pipeline.campaigns = CampaignStore(pipeline.tables["campaign_entities"], partition_of)

    async def take(batch: list[tuple[CampaignEntity, Any]]) -> None:
        rows: dict[int, dict[str, CampaignEntity | None]] = {}
        for entity, event in batch:
            partition = event.message.partition
            if partition_of(entity.account_id) != partition:
                raise MisPartitioned(f"entity {entity.key} of account {entity.account_id} on partition {partition}, "
                                     f"not its account's ({partition_of(entity.account_id)})")
            rows.setdefault(partition, {})[row_key(entity)] = None if entity.deleted else entity
        for partition, written in rows.items():
            await pipeline.write_rows("campaign_entities", written.items(), partition=partition)
        for entity, event in batch:
            store.applied[event.message.partition] = max(store.applied.get(event.message.partition, -1), event.message.offset)
            pipeline.health_monitor.entity_changed(entity)
        store.written()

    @app.agent(pipeline.topics["campaigns"], name=PROCESSOR)
    async def campaigns(stream):  # noqa: ANN001
        await consume_batches(stream, processor=PROCESSOR, codec=codecs.value("campaigns"), handle=take,
                              dead_letters=pipeline.dead_letters, metrics=pipeline.metrics)
