"""The sync status's reads, answered by the worker that owns the creatives' partitions
(streams/owners.py does the routing checks; gateway/library.py asks):

  POST /owners/status/states   the sync state (a row per sales agent) of creatives by key

Reads: the sync_state table. Writes: nothing.
"""
from __future__ import annotations

from typing import Any

from streams.owners import owner_query
from streams.runtime import stored_row


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    states = pipeline.tables["sync_state"]

    def read(body: dict[str, Any]) -> dict[str, Any]:
        found = {key: stored_row(states, key) for key in dict.fromkeys(str(k) for k in body["keys"])}
        # (without the creative itself: the caller has it from the library)
        return {"states": {key: state.model_dump(mode="json", exclude={"creative_json"})
                           for key, state in found.items() if state is not None}}

    owner_query(pipeline, "/owners/status/states", "sync_results", lambda body: [str(k) for k in body["keys"]], read)
