"""Interactive queries: a worker answers reads of the keys whose partitions it owns, from its own
tables, on its web port (Kafka Streams' interactive queries; the gateway routes each read to the
owner, streams/owner_client.py). The processors declare their reads with `owner_query`
(streams/library/reads.py, streams/status/reads.py); this module does what all of them share.

  GET  /owners/routing   which worker owns which partition of every topic (faust's assignment)
  POST /owners/...       a processor's read

Calls carry a bearer token derived from the deployment's secrets key (only our processes hold it).
A key whose partition is not active here is answered 421 (the caller reads the routing again),
and while this worker recovers its tables, 503.
"""
from __future__ import annotations

import hmac
import inspect
from collections.abc import Callable
from typing import Any

import orjson
from faust import web

from streams.runtime import tables_restoring
from topics.credentials import OWNER_QUERIES


class Recovering(RuntimeError):
    """A read that cannot be answered yet (e.g. the writer's record is not applied): 503, asked again."""


def _answer(view: web.View, body: Any, status: int = 200) -> web.Response:
    return view.bytes(orjson.dumps(body), content_type="application/json", status=status)


def _authorized(pipeline, request: web.Request) -> bool:  # noqa: ANN001 - streams.app.Pipeline
    expected = f"Bearer {pipeline.directory.box.token(OWNER_QUERIES)}".encode()
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected)


def owner_query(pipeline, path: str, role: str, keys_of: Callable[[dict[str, Any]], list[str]],  # noqa: ANN001
                handle: Callable[[dict[str, Any]], Any]) -> None:
    """POST `path`: `handle(body)` (an answer, or a coroutine of one) when this worker owns the
    partitions (of topic `role`) of every key `keys_of(body)` names."""
    app = pipeline.app
    topic_name = pipeline.topics[role].get_topic_name()
    partition_of = pipeline.codecs.partition_of(role)

    class Query(web.View):
        async def post(self, request: web.Request) -> web.Response:
            if not _authorized(pipeline, request):
                return _answer(self, {"error": "unauthorized"}, 401)
            if tables_restoring(app):
                return _answer(self, {"error": "recovering"}, 503)
            body = orjson.loads(await request.read())
            active = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic_name}
            foreign = [k for k in keys_of(body) if partition_of(k) not in active]
            if foreign:
                return _answer(self, {"error": "not_owner", "keys": foreign}, 421)
            try:
                answer = handle(body)
                if inspect.isawaitable(answer):
                    answer = await answer
            except Recovering as recovering:
                return _answer(self, {"error": "recovering", "detail": str(recovering)}, 503)
            return _answer(self, answer)

    Query.__name__ = f"Query{path.replace('/', '_')}"
    app.page(path)(Query)


def register(pipeline) -> None:  # noqa: ANN001
    app = pipeline.app

    class Routing(web.View):
        async def get(self, request: web.Request) -> web.Response:
            if not _authorized(pipeline, request):
                return _answer(self, {"error": "unauthorized"}, 401)
            topics: dict[str, dict[str, str]] = {}
            for url, assigned in app.assignor.external_topics_metadata().items():
                for name, partitions in assigned.items():
                    topics.setdefault(name, {}).update({str(p): url for p in partitions})
            members = sorted({url for owners in topics.values() for url in owners.values()})
            return _answer(self, {"topics": topics, "members": members})

    app.page("/owners/routing")(Routing)
