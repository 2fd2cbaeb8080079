"""The matcher processor: a sync trigger produced straight onto its documented topic by plain
aiokafka (as an upstream system would) is matched in the worker and reaches the compatible agents;
the answer comes back on the task results topic under the trigger's id."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from creative_sync.samples import sync_request, video_creative
from creative_sync.sim_agents import SimAgentConfig
from tests.integration.sales_agents import eventually, image_kind_creative, register
from tests.support import produce, read_topic, topic_name
from topics.catalogue import Codecs
from topics.events import SyncTrigger, SyncTriggerCommand


async def test_a_trigger_produced_onto_the_topic_by_plain_aiokafka_reaches_the_agents(api, agents, settings):
    """(and a manual sync naming a creative the library does not have is refused by the matcher)"""
    refused = await api.call("sync_creative_to_sales_agents", {"account": {"account_id": "acct-1"}, "creative_id": "nope"},
                             status=404)
    assert refused["errors"][0]["code"] == "REFERENCE_NOT_FOUND" and refused["errors"][0]["field"] == "creative_id"
    display = await agents.add(SimAgentConfig("display", "Daily News", ("image",)))
    await register(api, agents, "display", "Daily News")

    async def discovered() -> bool:
        listed = await api.call("list_sales_agents", {"account": {"account_id": "acct-1"}})
        return all(a["discovery"] == "done" for a in listed["sales_agents"])
    await eventually(discovered, timeout=120, what="discovery")
    await api.call("sync_creatives", sync_request("acct-1", [image_kind_creative("banner", 300, 250),
                                                             video_creative("spot")]))

    codecs = Codecs(prefix=settings.topic_prefix)
    trigger = SyncTriggerCommand(trigger_id="upstream-1", account_id="acct-1", trigger=SyncTrigger.MANUAL,
                                 creative_ids=["banner", "spot"], requested_at=datetime.now(UTC))
    await produce(settings.bootstrap_servers, topic_name(settings, "sync_triggers"),
                  [(codecs.key("sync_triggers").encode("acct-1"), codecs.value("sync_triggers").encode(trigger))])

    async def delivered() -> bool:
        return {c for _, c, _ in display.received} == {"banner"}
    await eventually(delivered, timeout=60, what="the banner at the display agent")
    decode = codecs.value("task_results").decode
    results = [r for r in await read_topic(settings.bootstrap_servers, topic_name(settings, "task_results"),
                                           decode=lambda r: decode(r.value),
                                           until=lambda found: any(r.task_id == "upstream-1" for r in found))
               if r.task_id == "upstream-1"]
    body = json.loads(results[0].result_json)
    by_creative = {c["creative_id"]: c for c in body["creatives"]}
    assert [q["sales_agent_id"] for q in by_creative["banner"]["queued"]] == ["display"]
    assert [s["sales_agent_id"] for s in by_creative["spot"]["skipped"]] == ["display"]  # no video there: why, recorded
    assert body["sales_agents_from"] == "every registered sales agent (no tactics yet)"
    async def skipped_with_reason() -> dict | None:
        row = (await api.status_of("spot")).get("display")
        return row if row and row["sync_status"] == "skipped" and row["reason"] else None
    await eventually(skipped_with_reason, timeout=60, what="the video's skip, with its reason, in the status")

