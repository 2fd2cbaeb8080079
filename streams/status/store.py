"""The archived creatives as the status processor keeps them: the archived_creatives table, whose
store (streams.stores) also keeps each account's archived creatives in archiving order, so that the
owner finds those archived longer than the status retention by reading only them (streams.retention).

Why a table of its own and not a field of the creatives' states: a derived index on sync_state
would make every status write (the busiest table) read and decode the row it replaces; this table
is written only when a creative with status rows is archived or comes back.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from streams import stores
from streams.library.index import SEP
from streams.library.store import IdempotencyIndex, LibraryIndex
from streams.retention import moment
from topics.events import ArchivedCreative


class ArchivedIndex(stores.TextEntries):
    """Each account's archived creatives by archiving time; an index row holds the creative id."""

    account_of = staticmethod(LibraryIndex.account_of)  # keys are account/creative, as the library's
    prefix = staticmethod(IdempotencyIndex.prefix)  # an account's rows, by time, as the idempotency keys'

    @staticmethod
    def moved(counts: Mapping[str, int], changes: Iterable[tuple[ArchivedCreative | None, ArchivedCreative | None]]
              ) -> tuple[stores.Rows, dict[str, int]]:
        return stores.moved_rows(counts, changes, lambda row: {
            f"{ArchivedIndex.prefix(row.account_id)}{moment(row.archived_at)}{SEP}{row.creative_id}": row.creative_id},
            lambda row: {"archived": 1})


stores.derive("archived_creatives", ArchivedIndex())
