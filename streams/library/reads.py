"""The library's reads, answered by the worker that owns the account (streams/owners.py does the
routing checks; gateway/library.py asks):

  POST /owners/library/page        a page of list_creatives for accounts owned here
  POST /owners/library/creatives   creatives by id (or the one with a buyer_ref)
  POST /owners/library/dry-run     sync_creatives with dry_run, against the current library

Reads: the creatives table, with the index and counts its store keeps (streams.library.store). Writes: nothing.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.library import logic
from streams.library.queries import PageQuery, account_page, view_of
from streams.library.requests import RequestRejected, creative_problems, parse_sync_request
from streams.owners import owner_query


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    library = pipeline.library

    def page(body: dict[str, Any]) -> dict[str, Any]:
        query = PageQuery.from_json(body["query"])
        return {"pages": [account_page(query, a, library.scan, library.counts(a)).as_json() for a in body["accounts"]]}

    def creatives(body: dict[str, Any]) -> dict[str, Any]:
        account_id = str(body["account_id"])
        if body.get("buyer_ref") is not None:  # a walk of the account: buyer_ref has no index (rare)
            found = next((s for _, _, read in library.scan(account_id, "created_date", False, None)
                          if (s := read()) is not None and logic.buyer_ref_of(s) == body["buyer_ref"]), None)
            rows = [found] if found is not None else []
        else:
            rows = [s for cid in dict.fromkeys(body.get("creative_ids") or [])
                    if (s := library.get(account_id, str(cid))) is not None]
        return {"creatives": [view_of(s).model_dump(mode="json") for s in rows]}

    def dry_run(body: dict[str, Any]) -> dict[str, Any]:
        account_id = str(body["account_id"])
        try:
            sync = parse_sync_request(body["request"])
        except RequestRejected as rejected:
            return {"errors": [p.as_adcp() for p in rejected.problems]}
        library_ids = ([entry.creative_id for _, entry, _ in library.scan(account_id, "created_date", False, None)]
                       if sync.delete_missing else [])
        existing = {cid: library.get(account_id, cid) for cid in logic.named_ids(sync, library_ids)}
        decision = logic.apply_sync(sync, command_id="dry-run", existing=existing, library_ids=library_ids,
                                    now=datetime.now(UTC), validate=creative_problems)
        if decision.errors:
            return {"errors": decision.errors}
        return logic.sync_response_for(decision, dry_run=True)

    accounts = lambda body: [str(a) for a in body["accounts"]]  # noqa: E731
    account = lambda body: [str(body["account_id"])]  # noqa: E731
    owner_query(pipeline, "/owners/library/page", "library_commands", accounts, page)
    owner_query(pipeline, "/owners/library/creatives", "library_commands", account, creatives)
    owner_query(pipeline, "/owners/library/dry-run", "library_commands", account, dry_run)
