"""The dashboard's live feed: `GET /api/v1/live?account=A` streams server-sent events (`health`,
`notification`) when an account's campaign health or notifications change, fed from their topics;
the page then reads what changed through the API. Each gateway follows the two topics from their
end with its one view consumer (topics.views), reading record keys only (campaign ids carry their
account, notifications are keyed by account), and only while someone watches. Memory: a bounded
queue per open stream; a watcher too slow to keep up gets one `resync` instead of a backlog.

A `fetch` with the Authorization header reads the stream (the browser's EventSource cannot send one,
and a token in a URL would end up in access logs).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from gateway import keys
from gateway.errors import AdcpRequestError
from gateway.middleware import PRINCIPAL
from topics.catalogue import HEARTBEAT_HEADER, topic
from topics.ids import account_in, public
from topics.views import CompactedView

KEEPALIVE_S = 15.0
QUEUE_LIMIT = 100

routes = web.RouteTableDef()


class ChangedKeys(CompactedView):
    """A topic's record keys from now on, as (kind, account, id) for the watchers of the account."""

    _from_end = True

    def __init__(self, feed: "LiveFeed", kind: str, role: str, codecs: Any, topic_prefix: str, bootstrap: str) -> None:
        super().__init__(bootstrap, topic(role).full_name(topic_prefix), codecs.value(role), lambda value: "")
        self._feed, self._kind, self._key_codec = feed, kind, codecs.key(role)

    def apply(self, value: Any) -> None:
        raise TypeError("ChangedKeys takes record keys from its topic only")

    def _take(self, record: Any) -> None:
        if not self._feed.watchers:  # nobody watches: not even the key is decoded
            return
        if any(name == HEARTBEAT_HEADER for name, _ in record.headers or ()):
            return  # a health heartbeat: nothing changed
        key = self._key_of_record(record, self._key_codec)
        if key is None:
            return
        account = key if self._kind == "notification" else account_in(key)
        if account is not None:
            self._feed.tell(account, self._kind, None if self._kind == "notification" else public(key))


class LiveFeed:
    def __init__(self, bootstrap: str, codecs: Any, topic_prefix: str) -> None:
        self.watchers: dict[str, set[asyncio.Queue]] = {}
        self.views = (ChangedKeys(self, "health", "campaign_health", codecs, topic_prefix, bootstrap),
                      ChangedKeys(self, "notification", "notifications", codecs, topic_prefix, bootstrap))

    def watch(self, account_id: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT)
        self.watchers.setdefault(account_id, set()).add(queue)
        return queue

    def unwatch(self, account_id: str, queue: asyncio.Queue) -> None:
        queues = self.watchers.get(account_id, set())
        queues.discard(queue)
        if not queues:
            self.watchers.pop(account_id, None)

    def tell(self, account_id: str, kind: str, item_id: str | None) -> None:
        for queue in self.watchers.get(account_id, ()):
            if queue.full():  # a slow reader: it reads everything again instead of every change
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(("resync", None))
            else:
                queue.put_nowait((kind, item_id))


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


@routes.get("/api/v1/live")
async def live(request: web.Request) -> web.StreamResponse:
    account_id = request.query.get("account", "")
    if not account_id:
        raise AdcpRequestError(400, "INVALID_REQUEST", "Name the account to watch: /api/v1/live?account=<account_id>.",
                               field="account", recovery="correctable")
    request[PRINCIPAL].require_account(account_id)
    feed: LiveFeed = request.app[keys.LIVE]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    queue = feed.watch(account_id)
    try:
        await response.write(sse("ready", {"account_id": account_id}))
        while True:
            try:
                kind, item_id = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            await response.write(sse(kind, {"id": item_id} if item_id else {}))
    except ConnectionResetError:  # the page went away (a closed tab); a cancelled handler ends here too
        pass
    finally:
        feed.unwatch(account_id, queue)
    return response
