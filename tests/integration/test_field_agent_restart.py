"""A field agent killed with SIGKILL mid-sync and started again on the same port (behaviours 13
and 15 of issue 14): the worker drops the dead MCP session, list_sales_agents tells the outage
as it is, and every creative still pending reaches the restarted agent."""
from __future__ import annotations

import dataclasses

import pytest

from creative_sync.broker import free_port
from creative_sync.samples import sync_request
from tests.field_agents.agent import FieldAgentConfig
from tests.integration.field import (ACCOUNT, agent_view, approved, discovered, reference_creative, register, settled,
                                     start_field_agents)
from tests.integration.sales_agents import eventually


# Backoffs of seconds rather than the deployed 15 s cool-down and 10 s retry cap: what is tested is
# that they end, not how long they are (tests/unit/test_sync_logic.py has those).
@pytest.mark.settings(sync_breaker_cool_down_s=4.0, sync_retry_cap_s=3.0)
async def test_an_agent_killed_mid_sync_and_restarted_on_its_port_gets_every_pending_creative(api, tmp_path):
    config = FieldAgentConfig(name="Phoenix", port=free_port(), status_in_answers=True)
    process = await start_field_agents([config], tmp_path / "phoenix-1.log")
    try:
        await register(api, "phoenix", config, process.url())
        await discovered(api, "phoenix")
        first = [reference_creative(f"early-{n:02d}") for n in range(20)]
        await api.call("sync_creatives", sync_request("acct-1", first))
        await api.call("sync_creative_to_sales_agents", {**ACCOUNT, "creative_ids": [c["creative_id"] for c in first],
                                                         "sales_agent_ids": ["phoenix"]})
        await settled(api, [c["creative_id"] for c in first], "phoenix", approved, "the first creatives approved")

        process.kill()  # SIGKILL: its MCP sessions die with it
        later = [reference_creative(f"later-{n:02d}") for n in range(20)]
        await api.call("sync_creatives", sync_request("acct-1", later))
        await api.call("sync_creative_to_sales_agents", {**ACCOUNT, "creative_ids": [c["creative_id"] for c in later],
                                                         "sales_agent_ids": ["phoenix"]})

        async def outage() -> dict | None:
            view = await agent_view(api, "phoenix")
            return view if view["live"]["state"] == "circuit_open" else None
        view = await eventually(outage, timeout=90, what="the outage shown in list_sales_agents")
        assert view["available"] is False and view["discovery"] == "done"  # what discovery found, next to the live state
        assert view["live"]["failing_since"] and view["live"]["last_error"] and view["live"]["last_success_at"]

        process = await start_field_agents([dataclasses.replace(config)], tmp_path / "phoenix-2.log")  # the same port

        async def resumed() -> list:
            return (await process.state())["received"]
        # Within one backoff period of its return: the circuit's cool-down (4 s) plus the longest
        # retry delay (3 s), with room for a busy machine.
        await eventually(resumed, timeout=4 + 3 + 45, what="the first delivery after the agent's return")
        ids = [c["creative_id"] for c in later]
        await settled(api, ids, "phoenix", approved, "every pending creative at the restarted agent", timeout=120)
        state = await process.state()
        assert {r["creative_id"] for r in state["received"]} == set(ids)
        view = await agent_view(api, "phoenix")
        assert (view["available"], view["live"]["state"], view["live"]["failing_since"]) == (True, "ok", None)
        notifications = await api.call("list_notifications", {**ACCOUNT, "types": ["sales_agent.unavailable"]})
        assert len(notifications["notifications"]) == 1  # one outage, one notification
    finally:
        process.kill()
