"""The row-caching codec writes exactly the bytes fastavro writes, whatever rows it reuses."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.status import logic
from topics.catalogue import Codecs
from topics.codec import RowCachingCodec, _zigzag_varint
from topics.events import (
    CreativeSyncState,
    SyncOutcome,
    SyncResult,
    SyncState,
    SyncStatus,
)

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def row(agent: str, **fields) -> SyncStatus:
    return SyncStatus(account_id="acct", creative_id="cr", sales_agent_id=agent, sync_status=SyncState.SYNCING,
                      updated_at=T0, **fields)


@pytest.fixture
def codecs() -> tuple:
    plain = Codecs().value("sync_status")
    return plain, RowCachingCodec(plain.family, CreativeSyncState, cache_size=8)


@pytest.mark.parametrize("rows", [
    [],
    [row("a")],
    [row(f"agent-{n:02d}", approval_status="approved", attempts=n, content_version_synced=n, last_sync_at=T0,
         platform_creative_id=f"p{n}", rejection_reason="zu groß ✓" if n % 3 == 0 else None) for n in range(70)],
])
def test_it_writes_fastavros_bytes_for_no_one_and_many_rows(codecs, rows):
    plain, cached = codecs
    state = CreativeSyncState(account_id="acct", creative_id="cr", content_version=3, creative_json='{"x": 1}', rows=rows)
    assert cached.encode(state) == plain.encode(state)
    assert cached.encode(state) == plain.encode(state)  # again, from its cache (70 rows overflow a cache of 8)
    assert plain.decode(cached.encode(state)) == state


def test_a_row_replaced_by_a_result_is_written_anew_and_the_others_come_from_the_cache(codecs):
    plain, cached = codecs
    state = CreativeSyncState(account_id="acct", creative_id="cr", rows=[row("a"), row("b"), row("c")])
    cached.encode(state)
    result = SyncResult(result_id="r", job_id="j", sales_agent_id="b", account_id="acct", creative_id="cr", content_version=1,
                        outcome=SyncOutcome.SYNCED, approval_status="approved", occurred_at=T0 + timedelta(seconds=1))
    after = logic.apply_result(state, result).state
    assert after.rows[0] is state.rows[0] and after.rows[1] is not state.rows[1]
    assert cached.encode(after) == plain.encode(after)
    assert plain.decode(cached.encode(after)).rows[1].approval_status == "approved"


@pytest.mark.parametrize("n, encoded", [(0, b"\x00"), (1, b"\x02"), (63, b"\x7e"), (64, b"\x80\x01"), (300, b"\xd8\x04")])
def test_array_counts_are_avro_longs(n, encoded):
    assert _zigzag_varint(n) == encoded
