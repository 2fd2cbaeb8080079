"""The sync status's reads, answered by the worker that owns the creatives' partitions
(streams/owners.py does the routing checks; gateway/library.py asks):

  POST /owners/status/states   the sync state (a row per sales agent) of creatives by key

and how another process asks for them (`rows_of`: the gateway; a worker's campaign health, whose
campaigns' creatives live in other partitions).

Reads: the sync_state table. Writes: nothing.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.owners import owner_query
from streams.runtime import stored_row
from streams.status.logic import state_key
from topics.events import CreativeSyncState, SyncStatus


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    states = pipeline.tables["sync_state"]

    def read(body: dict[str, Any]) -> dict[str, Any]:
        found = {key: stored_row(states, key) for key in dict.fromkeys(str(k) for k in body["keys"])}
        # (without the creative itself: the caller has it from the library)
        return {"states": {key: state.model_dump(mode="json", exclude={"creative_json"})
                           for key, state in found.items() if state is not None}}

    owner_query(pipeline, "/owners/status/states", "sync_results", lambda body: [str(k) for k in body["keys"]], read)


async def rows_of(owners: Any, account_id: str, creative_ids: Iterable[str]) -> dict[str, list[SyncStatus]]:
    """Each creative's status rows (one per sales agent it was matched against), sorted by agent id,
    asked of the workers that own them (`owners`: streams.owner_client.Owners)."""
    wanted = {state_key(account_id, cid): cid for cid in dict.fromkeys(creative_ids)}
    if not wanted:
        return {}
    answers = await owners.ask("/owners/status/states", "sync_results", wanted, lambda group: {"keys": group})
    states = {key: CreativeSyncState.model_validate(state) for answer in answers for key, state in answer["states"].items()}
    return {cid: sorted(states[key].rows, key=lambda r: r.sales_agent_id) if key in states else []
            for key, cid in wanted.items()}
