"""The matcher processor: a sync trigger produced straight onto its documented topic by plain
aiokafka (as an upstream system would) is matched in the worker and reaches the compatible agents;
the answer comes back on the task results topic under the trigger's id. A content change reaches
the matcher as a trigger on the same topic, and is matched again."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from creative_sync.samples import sync_request, video_creative
from creative_sync.sim_agents import SimAgentConfig
from tests.integration.sales_agents import eventually, image_kind_creative, register
from tests.support import produce, read_topic, topic_name
from topics.catalogue import Codecs
from topics.events import SyncTrigger, SyncTriggerCommand
from topics.ids import scoped


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



    # Content changes: the status processor triggers the matcher for the agents that have the
    # creative. A new version that fits is delivered; one that no longer fits is skipped, with why.
    v2 = image_kind_creative("banner", 300, 250)
    v2["assets"]["main"]["url"] = "https://cdn.example.com/banner-v2.png"
    await api.call("sync_creatives", sync_request("acct-1", [v2]))

    async def second_version() -> bool:
        return sum(1 for _, c, _ in display.received if c == "banner") >= 2
    await eventually(second_version, timeout=60, what="the banner's new version at the display agent")
    await api.call("sync_creatives", sync_request("acct-1", [video_creative("banner")]))

    async def no_longer_fits() -> dict | None:
        row = (await api.status_of("banner")).get("display")
        return row if row and row["sync_status"] == "skipped" and row["reason"] else None
    await eventually(no_longer_fits, timeout=60, what="the banner turned video skipped at the display agent")
    assert sum(1 for _, c, _ in display.received if c == "banner") == 2  # the video was not sent there
    decode_trigger = codecs.value("sync_triggers").decode
    content = lambda found: [t for t in found if t.trigger is SyncTrigger.CONTENT_CHANGE and "banner" in t.creative_ids]  # noqa: E731
    triggers = await read_topic(settings.bootstrap_servers, topic_name(settings, "sync_triggers"),
                                decode=lambda r: decode_trigger(r.value), until=lambda found: len(content(found)) >= 2)
    assert all(t.sales_agent_ids == [scoped("acct-1", "display")] for t in content(triggers))
