"""Retention rules on the broker, with short windows: an idempotency key is forgotten after its
replay window (its record tombstoned by the account's owner: the same key is then a new request),
a notification older than the notifications' retention leaves its account's list, and the status
rows of a removed sales agent leave every creative's state, and an archived creative's status goes.
(The rules' pure parts, with a controlled clock: tests/unit/test_retention.py, tests/unit/test_status_logic.py.)"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from creative_sync.samples import display_creative, sync_request
from creative_sync.sim_agents import SimAgentConfig
from tests.integration.sales_agents import eventually, register
from tests.support import produce, read_topic, topic_name
from topics.catalogue import Codecs, table
from topics.events import Notification, Urgency
from topics.ids import scoped

# status rows: kept ~0.9 s after their agent's removal
pytestmark = pytest.mark.settings(idempotency_ttl_s=3.0, retention_sweep_s=0.5, notification_retention_days=1.0,
                                  status_retention_days=1e-5)


async def test_an_expired_idempotency_key_and_an_old_notification_are_forgotten(api, topics_created):
    settings, codecs = topics_created, Codecs(prefix=topics_created.topic_prefix)
    request = sync_request(api.account, [display_creative("kept-c1")], idempotency_key="retention-key-0001")
    other = sync_request(api.account, [display_creative("kept-c2")], idempotency_key="retention-key-0001")
    first = await api.call("sync_creatives", request)
    assert [c["action"] for c in first["creatives"]] == ["created"] and not first.get("replayed")
    assert (await api.call("sync_creatives", request)).get("replayed") is True  # within the window
    refused = await api.call("sync_creatives", other, status=409)  # the key is taken, for another request
    assert refused["errors"][0]["code"] == "IDEMPOTENCY_CONFLICT"

    changelog = table("idempotency").changelog_name(settings.app_id)
    key = codecs.key_codec("string_key", f"{changelog}-key").encode(f"{api.account}/retention-key-0001")
    records = await read_topic(settings.bootstrap_servers, changelog, timeout_s=60,
                               until=lambda rs: any(r.key == key and r.value is None for r in rs))
    assert [r.value is None for r in records if r.key == key][-1] is True  # tombstoned by the owner
    again = await api.call("sync_creatives", other)  # forgotten: the key is free for a new request
    assert [(c["creative_id"], c["action"]) for c in again["creatives"]] == [("kept-c2", "created")]
    assert not again.get("replayed")

    now = datetime.now(UTC)
    notes = [Notification(notification_id=f"retention-{age}", account_id=api.account, type="creative.approved",
                          urgency=Urgency.LOW, message=f"{age} days old", created_at=now - timedelta(days=age)) for age in (0, 2)]
    await produce(settings.bootstrap_servers, topic_name(settings, "notifications"),
                  [(codecs.key("notifications").encode(api.account), codecs.value("notifications").encode(n)) for n in notes])

    async def listed() -> list[str] | None:
        found = [n["notification_id"] for n in (await api.call("list_notifications", {"account": {"account_id": api.account}}))["notifications"]
                 if n["notification_id"].startswith("retention-")]
        return found if found == ["retention-0"] else None
    await eventually(listed, timeout=60, what="the old notification forgotten, the new one kept")


async def test_the_status_rows_of_a_removed_agent_are_dropped_after_the_retention(api, agents, topics_created):
    settings, codecs = topics_created, Codecs(prefix=topics_created.topic_prefix)
    for agent_id in ("staying", "leaving"):
        await agents.add(SimAgentConfig(agent_id, agent_id.title(), ("image",)))
        await register(api, agents, agent_id, agent_id.title())
    await api.call("sync_creatives", sync_request(api.account, [display_creative("kept-c3"), display_creative("kept-c4")]))

    async def synced_to_both() -> bool:
        answer = await api.call("sync_creative_to_sales_agents", {"account": {"account_id": api.account},
                                                                  "creative_ids": ["kept-c3", "kept-c4"]})
        return all(len(c["queued"]) == 2 for c in answer["creatives"])
    await eventually(synced_to_both, timeout=180, what="both agents discovered and the creatives queued to them")

    async def rows(creative_id: str) -> set[str]:
        return set(await api.status_of(creative_id))
    await eventually(lambda: _all(rows, ["kept-c3", "kept-c4"], {"staying", "leaving"}), timeout=120,
                     what="a status row at each agent")

    await api.call("remove_sales_agent", {"account": {"account_id": api.account}, "sales_agent_id": "leaving"})
    await eventually(lambda: _all(rows, ["kept-c3", "kept-c4"], {"staying"}), timeout=60,
                     what="the removed agent's rows dropped once the retention passed")
    # on the changelog too: the creative's state rewritten without them
    changelog = table("sync_state").changelog_name(settings.app_id)
    key = codecs.key_codec("string_key", f"{changelog}-key").encode(f"{api.account}/kept-c3")
    state = codecs.schema("creative_sync_state", f"{changelog}-value")
    records = await read_topic(settings.bootstrap_servers, changelog, timeout_s=60,
                               until=lambda rs: any(r.key == key and r.value is not None
                                                    and {x.sales_agent_id for x in state.decode(r.value).rows}
                                                    == {scoped(api.account, "staying")} for r in rs))
    assert {x.sales_agent_id for x in state.decode([r for r in records if r.key == key][-1].value).rows} == {
        scoped(api.account, "staying")}


async def test_the_status_of_a_creative_archived_longer_than_the_retention_is_dropped(api, agents, topics_created):
    settings, codecs = topics_created, Codecs(prefix=topics_created.topic_prefix)
    await agents.add(SimAgentConfig("keeper", "Keeper", ("image",)))
    await register(api, agents, "keeper", "Keeper")
    creatives = [display_creative("stays-c5"), display_creative("archived-c6")]
    await api.call("sync_creatives", sync_request(api.account, creatives))

    async def queued() -> bool:
        answer = await api.call("sync_creative_to_sales_agents", {"account": {"account_id": api.account},
                                                                  "creative_ids": ["stays-c5", "archived-c6"]})
        return all(c["queued"] for c in answer["creatives"])
    await eventually(queued, timeout=180, what="the agent discovered and the creatives queued to it")

    async def rows(creative_id: str) -> set[str]:
        return set(await api.status_of(creative_id))
    await eventually(lambda: _all(rows, ["stays-c5", "archived-c6"], {"keeper"}), timeout=120, what="a status row each")

    kept = await api.call("sync_creatives", sync_request(api.account, creatives[:1], delete_missing=True))
    assert {c["creative_id"]: c["action"] for c in kept["creatives"]}["archived-c6"] == "deleted"  # AdCP: archived
    await eventually(lambda: _all(rows, ["archived-c6"], set()), timeout=60,
                     what="the archived creative's status dropped once the retention passed")
    assert await rows("stays-c5") == {"keeper"}  # the creative still in the library keeps its status
    listed = await api.call("list_creatives", {"account": {"account_id": api.account}, "filters": {"statuses": ["archived"]}})
    assert [c["creative_id"] for c in listed["creatives"]] == ["archived-c6"]  # the creative itself stays, archived

    # tombstoned in the table's changelog and on the status topic
    changelog = table("sync_state").changelog_name(settings.app_id)
    key = codecs.key_codec("string_key", f"{changelog}-key").encode(f"{api.account}/archived-c6")
    await read_topic(settings.bootstrap_servers, changelog, timeout_s=60,
                     until=lambda rs: any(r.key == key and r.value is None for r in rs))
    status_key = codecs.key("sync_status").encode(f"{api.account}/archived-c6")
    await read_topic(settings.bootstrap_servers, topic_name(settings, "sync_status"), timeout_s=60,
                     until=lambda rs: any(r.key == status_key and r.value is None for r in rs))


async def _all(rows, creative_ids: list[str], agents: set[str]) -> bool:  # noqa: ANN001
    return all([await rows(c) == agents for c in creative_ids])
