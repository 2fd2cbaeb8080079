"""Asking the owners (Kafka Streams' interactive queries, the client side; streams/owners.py is the
worker's side): data lives in the tables of the worker that owns its key's partition, and a process
that needs some (the gateway; a worker needing another partition's rows, e.g. campaign health)
asks that worker instead of keeping a copy of everything.

Which worker owns which partition comes from any worker (`/owners/routing`: faust's assignment,
which every member knows); it is kept until an answer says it changed (421: not the owner any
more) or a worker cannot be reached, then read again. During a rebalance the owner answers 503
until its tables are recovered; the client retries until the read's deadline, then raises the
caller's `unavailable` error.

Holds: the routing (one URL per topic partition) and the members' URLs (bounded). Nothing per key.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
import orjson

from topics.catalogue import Codecs, topic

log = logging.getLogger(__name__)
_MAX_MEMBERS = 64


class OwnersUnavailable(RuntimeError):
    """The owners did not answer within the read's deadline (rebalancing, down)."""


class OwnerFailed(RuntimeError):
    """An owner answered something other than an answer, 421 or 503."""


class Owners:
    def __init__(self, seeds: Iterable[str], token: str, codecs: Codecs, *, deadline_s: float = 15.0,
                 metrics: Any = None, unavailable: Callable[[str], Exception] = OwnersUnavailable,
                 failed: Callable[[int], Exception] = lambda status: OwnerFailed(f"the owner answered {status}")) -> None:
        self._unavailable, self._failed = unavailable, failed
        self._members = list(dict.fromkeys(u.rstrip("/") for u in seeds))
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._codecs, self._deadline_s, self._metrics = codecs, deadline_s, metrics
        self._owners: dict[str, dict[int, str]] = {}  # topic -> partition -> the URL of its owner
        self._refreshing: asyncio.Lock | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10, connect=2))
        self._refreshing = asyncio.Lock()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- routing --------------------------------------------------------------------------------
    async def _refresh(self, seen: dict[int, str]) -> None:
        """Read the routing again, unless another request already did since `seen` was read."""
        async with self._refreshing:
            if self._owners is not seen:
                return
            for member in list(self._members):
                try:
                    async with self._session.get(f"{member}/owners/routing", headers=self._headers) as response:
                        if response.status != 200:
                            continue
                        routing = orjson.loads(await response.read())
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                    continue
                owners = {name: {int(p): url.rstrip("/") for p, url in partitions.items()}
                          for name, partitions in routing["topics"].items()}
                if owners:
                    self._owners = owners
                    known = [*self._members, *(u.rstrip("/") for u in routing["members"])]
                    self._members = list(dict.fromkeys(known))[-_MAX_MEMBERS:]
                    if self._metrics is not None:
                        self._metrics.routing_refreshes.inc()
                    return
            self._owners = {}  # nobody answered with an assignment: ask again next time

    # -- asking -----------------------------------------------------------------------------------
    def _owner(self, owners: dict[str, dict[int, str]], role: str, key: str) -> str:
        name = topic(role).full_name(self._codecs.prefix)
        return owners.get(name, {}).get(self._codecs.partition_of(role)(key), "")

    async def ask(self, path: str, role: str, keys: Iterable[str], payload: Callable[[list[str]], dict[str, Any]]) -> list[Any]:
        """POST `payload(the keys one worker owns)` to each owner of `keys` (keys of topic `role`:
        its partitions are what is owned); their answers. Raises `unavailable(why)` when the owners
        cannot answer in time."""
        pending = sorted(set(keys))
        answers: list[Any] = []
        deadline, pause = time.monotonic() + self._deadline_s, 0.05
        first = True
        while True:
            owners = self._owners
            by_owner: dict[str, list[str]] = {}
            for key in pending:
                by_owner.setdefault(self._owner(owners, role, key), []).append(key)
            if "" not in by_owner:
                results = await asyncio.gather(*(self._post(url, path, payload(group)) for url, group in by_owner.items()))
                pending = []
                for group, (status, body) in zip(by_owner.values(), results):
                    if status == 200:
                        answers.append(body)
                    else:
                        pending += group
                if not pending:
                    self._looked_up("hit" if first else "miss")
                    return answers
            first = False
            await self._refresh(owners)  # unknown, moved (421), recovering (503) or unreachable
            if self._owners is not owners and self._owners and "" in by_owner:
                continue  # a routing at last: use it at once
            if time.monotonic() + pause > deadline:
                raise self._unavailable("the workers that own it are not answering (rebalancing or down)")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _looked_up(self, result: str) -> None:
        """Whether the routing kept answered the read at once (hit) or had to be read again (miss)."""
        if self._metrics is not None:
            self._metrics.cache_lookups.labels("routing", result).inc()

    async def _post(self, url: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        started = time.perf_counter()
        try:
            async with self._session.post(f"{url}{path}", data=orjson.dumps(body), headers=self._headers) as response:
                answer = orjson.loads(await response.read()) if response.status in (200, 421, 503) else None
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            log.info("owner %s did not answer %s: %s", url, path, type(error).__name__)
            status, answer = 0, None
        if self._metrics is not None:
            self._metrics.owner_reads.labels(path.rsplit("/", 1)[-1], str(status)).observe(time.perf_counter() - started)
        if status not in (0, 200, 421, 503):
            raise self._failed(status)
        return status, answer
