"""The account's library and its creatives' sync status as the gateway reads them: asked of the
worker that owns the account, or the creative (streams/owner_client.py → streams/library/reads.py,
streams/status/reads.py), never copied here."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import keys
from streams.library.queries import AccountPage, PageQuery, merge
from streams.status import reads as status_reads
from topics.events import CreativeChanged, SyncStatus


async def creatives(app: web.Application, account_id: str, creative_ids: list[str]) -> dict[str, CreativeChanged]:
    """The creatives of `creative_ids` that the account's library has (archived ones too), by id."""
    if not creative_ids:
        return {}
    [answer] = await app[keys.OWNERS].ask("/owners/library/creatives", "library_commands", [account_id],
                                          lambda _: {"account_id": account_id, "creative_ids": list(creative_ids)})
    found = (CreativeChanged.model_validate(c) for c in answer["creatives"])
    return {c.creative_id: c for c in found}


async def creative_by_buyer_ref(app: web.Application, account_id: str, buyer_ref: str) -> CreativeChanged | None:
    [answer] = await app[keys.OWNERS].ask("/owners/library/creatives", "library_commands", [account_id],
                                          lambda _: {"account_id": account_id, "buyer_ref": buyer_ref})
    return CreativeChanged.model_validate(answer["creatives"][0]) if answer["creatives"] else None


async def page(app: web.Application, query: PageQuery, account_ids: list[str],
               accounts: dict[str, dict[str, Any]] | None, fields: list[str] | None) -> dict[str, Any]:
    """A list_creatives answer: each owner computes the page of its accounts, merged here."""
    answers = await app[keys.OWNERS].ask("/owners/library/page", "library_commands", account_ids,
                                         lambda group: {"accounts": group, "query": query.as_json()})
    pages = [AccountPage.from_json(p) for answer in answers for p in answer["pages"]]
    return merge(query, pages, accounts, fields)


async def dry_run(app: web.Application, account_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """sync_creatives with dry_run, rehearsed by the owner against the current library."""
    [answer] = await app[keys.OWNERS].ask("/owners/library/dry-run", "library_commands", [account_id],
                                          lambda _: {"account_id": account_id, "request": request})
    return answer


async def status_rows(app: web.Application, account_id: str, creative_ids: list[str]) -> dict[str, list[SyncStatus]]:
    """Each creative's status rows (one per sales agent it was matched against), by agent id."""
    return await status_reads.rows_of(app[keys.OWNERS], account_id, creative_ids)
