"""The tests' own waits must be able to fail: `all_synced` once answered True whatever the status
said (`missing or True`, with a falsy `Unsettled`), and the crash and failover tests waited for
nothing."""
from __future__ import annotations

import pytest

from tests.integration.sales_agents import Unsettled, all_synced, eventually, settled


class _Answer:
    def __init__(self, status: int, body: dict) -> None:
        self.status, self._body = status, body

    async def json(self) -> dict:
        return self._body


class _Client:
    """Answers get_creative_sync_status with every creative's rows in the given states."""

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    async def post(self, path: str, *, headers: dict, json: dict) -> _Answer:
        assert path.endswith("/get_creative_sync_status")
        return _Answer(200, {"creatives": [
            {"creative_id": c, "sales_agents": [{"sales_agent_id": a, "sync_status": s} for a, s in self.states.items()]}
            for c in json["creative_ids"]]})


class _Api:
    account, token = "acct-1", "t"

    def __init__(self, states: dict[str, str]) -> None:
        self.client = _Client(states)


def test_settled_is_true_only_when_nothing_is_missing():
    assert settled(Unsettled()) is True
    missing = settled(Unsettled([("c1", "agent-0", "syncing")]))
    assert not missing and list(missing) == [("c1", "agent-0", "syncing")]


async def test_all_synced_is_falsy_while_a_row_is_not_synced():
    assert await all_synced(_Api({"agent-0": "synced", "agent-1": "synced"}), [["c1", "c2"]], 2) is True
    syncing = await all_synced(_Api({"agent-0": "syncing", "agent-1": "synced"}), [["c1", "c2"]], 2)
    assert not syncing and [row[:2] for row in syncing] == [("c1", "agent-0"), ("c2", "agent-0")]
    assert not await all_synced(_Api({"agent-0": "synced"}), [["c1"]], 2)  # an agent's row missing


async def test_eventually_gives_up_naming_the_last_answer():
    async def probe() -> Unsettled:
        return Unsettled([("c1", "agent-0", "syncing")])
    with pytest.raises(AssertionError, match=r"1 not settled, first \[\('c1', 'agent-0'"):
        await eventually(probe, timeout=0.5, what="the pairs")
