"""Interactive queries of the library: the worker that owns an account's partition answers the reads
of that account from its own tables, on its web port (Kafka Streams' interactive queries; the
gateway routes each read to the owner, gateway/owners.py).

  GET  /owners/routing             which worker owns which partition of the library (faust's assignment)
  POST /owners/library/page        a page of list_creatives for accounts owned here
  POST /owners/library/creatives   creatives by id (or the one with a buyer_ref)
  POST /owners/library/dry-run     sync_creatives with dry_run, against the current library

Calls carry a bearer token derived from the deployment's secrets key (only our processes hold it).
An account whose partition is not active here is answered 421 (the caller re-reads the routing),
and while this worker recovers its tables, 503.

Reads: the creatives, library_index and library_counts tables. Writes: nothing.
"""
from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
from faust import web

from streams.library import logic
from streams.library.queries import AccountPage, PageQuery, account_page, view_of
from streams.library.requests import RequestRejected, creative_problems, parse_sync_request
from topics.credentials import OWNER_QUERIES


def register(pipeline) -> None:  # noqa: ANN001 - streams.app.Pipeline (import cycle)
    app, library = pipeline.app, pipeline.library
    token = pipeline.directory.box.token(OWNER_QUERIES)
    commands = pipeline.topics["library_commands"].get_topic_name()
    partition_of = pipeline.codecs.partition_of("library_commands")

    def answer(view: web.View, body: Any, status: int = 200) -> web.Response:
        return view.bytes(orjson.dumps(body), content_type="application/json", status=status)

    def refusal(view: web.View, request: web.Request, accounts: list[str]) -> web.Response | None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return answer(view, {"error": "unauthorized"}, 401)
        if getattr(app, "in_recovery", False) or getattr(app, "rebalancing", False):
            return answer(view, {"error": "recovering"}, 503)
        active = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == commands}
        foreign = [a for a in accounts if partition_of(a) not in active]
        if foreign:
            return answer(view, {"error": "not_owner", "accounts": foreign}, 421)
        return None

    async def body_of(request: web.Request) -> dict[str, Any]:
        return orjson.loads(await request.read())

    class Routing(web.View):
        async def get(self, request: web.Request) -> web.Response:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return answer(self, {"error": "unauthorized"}, 401)
            owners = {str(p): url for url, topics in app.assignor.external_topics_metadata().items()
                      for p in topics.get(commands, ())}
            return answer(self, {"topic": commands, "owners": owners, "members": sorted(set(owners.values()))})

    class Page(web.View):
        async def post(self, request: web.Request) -> web.Response:
            body = await body_of(request)
            accounts = [str(a) for a in body["accounts"]]
            if (refused := refusal(self, request, accounts)) is not None:
                return refused
            query = PageQuery.from_json(body["query"])
            pages: list[AccountPage] = [account_page(query, a, library.scan, library.counts(a)) for a in accounts]
            return answer(self, {"pages": [p.as_json() for p in pages]})

    class Creatives(web.View):
        async def post(self, request: web.Request) -> web.Response:
            body = await body_of(request)
            account_id = str(body["account_id"])
            if (refused := refusal(self, request, [account_id])) is not None:
                return refused
            if body.get("buyer_ref") is not None:  # a walk of the account: buyer_ref has no index (rare)
                found = next((s for _, s in library.scan(account_id, "created_date", False, None)
                              if logic.buyer_ref_of(s) == body["buyer_ref"]), None)
                rows = [found] if found is not None else []
            else:
                rows = [s for cid in dict.fromkeys(body.get("creative_ids") or [])
                        if (s := library.get(account_id, str(cid))) is not None]
            return answer(self, {"creatives": [view_of(s).model_dump(mode="json") for s in rows]})

    class DryRun(web.View):
        async def post(self, request: web.Request) -> web.Response:
            body = await body_of(request)
            account_id = str(body["account_id"])
            if (refused := refusal(self, request, [account_id])) is not None:
                return refused
            try:
                sync = parse_sync_request(body["request"])
            except RequestRejected as rejected:
                return answer(self, {"errors": [p.as_adcp() for p in rejected.problems]})
            library_ids = ([s.creative_id for _, s in library.scan(account_id, "created_date", False, None)]
                           if sync.delete_missing else [])
            existing = {cid: library.get(account_id, cid) for cid in logic.named_ids(sync, library_ids)}
            decision = logic.apply_sync(sync, command_id="dry-run", existing=existing, library_ids=library_ids,
                                        now=datetime.now(UTC), validate=creative_problems)
            if decision.errors:
                return answer(self, {"errors": decision.errors})
            return answer(self, logic.sync_response_for(decision, dry_run=True))

    app.page("/owners/routing")(Routing)
    app.page("/owners/library/page")(Page)
    app.page("/owners/library/creatives")(Creatives)
    app.page("/owners/library/dry-run")(DryRun)
