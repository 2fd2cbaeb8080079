"""Entity ids are per account: two accounts may both have `campaign-1` or a sales agent `ssp`,
and neither can learn that the other has one, take it over, or race it.

Inside the system (topic keys, tables, jobs, status rows, webhook paths) an entity is named by
its *scoped id*, `<account id>~<id>`; the API shows and takes the id alone, within the caller's
account. Ids cannot contain `~` (letters, digits, '.', '_', '-'), so the last `~` splits a scoped
id whatever the account id holds. Keys of different accounts never collide, in any processor, by
construction: no check-then-publish race can hand one account's entity to another.
"""
from __future__ import annotations

import re
from urllib.parse import quote

SEPARATOR = "~"
#: An entity id as the API takes it.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def scoped(account_id: str, entity_id: str) -> str:
    return f"{account_id}{SEPARATOR}{entity_id}"


def public(scoped_id: str | None) -> str | None:
    """The id the API shows (a record written before ids were scoped shows as it is)."""
    return scoped_id.rsplit(SEPARATOR, 1)[-1] if scoped_id is not None else None


def public_all(scoped_ids) -> list[str]:  # noqa: ANN001 - any iterable of scoped ids
    return [public(i) for i in scoped_ids]


def account_in(scoped_id: str) -> str | None:
    """The account a scoped id belongs to (None: not a scoped id)."""
    account, separator, _ = scoped_id.rpartition(SEPARATOR)
    return account if separator else None


def webhook_path(scoped_agent_id: str) -> str:
    """Where a sales agent posts its webhooks to us (the account id may hold any character)."""
    return f"/webhooks/sales-agents/{quote(scoped_agent_id, safe='')}"
