"""The library's ordered keys and the page walk over them (pure): index rows follow every change,
pages cost the page, cursors survive a library that changes between pages, several accounts merge."""
from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from creative_sync.samples import display_creative, video_creative
from streams.library import index
from streams.library.queries import PageQuery, account_page, memory_scan, merge, parse_query
from topics.events import StoredCreative

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def stored(account: str, creative_id: str, minute: int, *, name: str | None = None, status: str = "approved",
           video: bool = False, packages: int = 0) -> StoredCreative:
    body = video_creative(creative_id) if video else display_creative(creative_id)
    if name is not None:
        body["name"] = name
    when = T0 + timedelta(minutes=minute)
    return StoredCreative(account_id=account, creative_id=creative_id, content_version=1, content_hash="h",
                          metadata_hash="m", creative_json=json.dumps(body), status=status, created_at=when,
                          updated_at=when, last_command_id="cmd", assigned_to=[f"p{i}" for i in range(packages)])


def walk(library: list[StoredCreative], request: dict, accounts: list[str], *, budget: int = 5_000,
         between=None) -> list[list[str]]:
    """Every page of `request`, calling `between(library)` after each page (a library that changes)."""
    pages, cursor = [], None
    while True:
        body = {**request, "pagination": {**request.get("pagination", {}), **({"cursor": cursor} if cursor else {})}}
        query = parse_query(body)
        scan = memory_scan(library)
        counts = {a: index.moved({}, ((None, s) for s in library if s.account_id == a))[1] for a in accounts}
        answer = merge(query, [account_page(query, a, scan, counts[a], budget=budget) for a in accounts])
        pages.append([c["creative_id"] for c in answer["creatives"]])
        if not answer["pagination"]["has_more"]:
            return pages
        cursor = answer["pagination"]["cursor"]
        if between:
            between(library)
        assert len(pages) < 500


STORED_FIELDS = [f for f in index.SORT_FIELDS if index.ORDERS[f].stored]


def test_keys_within_an_account_and_order_have_one_length_so_byte_order_is_value_order():
    rows = [stored("acct", f"c{i}", i, name=name, packages=i % 3 + 1)
            for i, name in enumerate(["b", "a", "abc", "Zed", "é", "ab" * 40])]
    for field in STORED_FIELDS:
        keys = [index.keys_of(r)[field] for r in rows]
        assert len({len(k) for k in keys}) == 1
        assert sorted(keys) == sorted(keys, key=lambda k: k.encode())  # str order = UTF-8 byte order
        assert all(index.in_range(k, "acct", field) for k in keys)
        low, high = index.bounds("acct", field)
        assert all(low < k < high for k in keys) and not index.in_range(index.keys_of(stored("acct2", "x", 1, packages=1))[field], "acct", field)
    names = sorted(rows, key=lambda r: index.keys_of(r)["name"])
    assert [json.loads(r.creative_json)["name"] for r in names][:4] == ["a", "ab" * 40, "abc", "b"]


def test_index_rows_move_a_creative_and_leave_nothing_behind():
    before = stored("acct", "c1", 1, name="old name")
    renamed = before.model_copy(update={"updated_at": T0 + timedelta(hours=1),
                                        "creative_json": json.dumps({**json.loads(before.creative_json), "name": "new"})})
    rows = dict(index.moved({}, [(None, before)])[0])
    # three rows for a new creative: creation, update and name (status and assignments are walks)
    assert set(index.keys_of(before)) == {"created_date", "updated_date", "name"}
    assert len(rows) == 3 and set(rows.values()) == {index.Entry("c1", "approved", None)}
    moved = index.moved({}, [(before, renamed)])[0]
    gone = {k for k, v in moved if v is None}
    added = {k for k, v in moved if v is not None}
    assert gone == {index.keys_of(before)[f] for f in ("updated_date", "name")}  # only the positions that moved
    assert added == {index.keys_of(renamed)[f] for f in ("updated_date", "name")}
    for key, value in moved:
        rows[key] = value
    assert {k for k, v in rows.items() if v} == set(index.keys_of(renamed).values())
    assert index.moved({}, [(renamed, renamed)])[0] == []  # nothing moved, nothing written
    rejected = renamed.model_copy(update={"status": "rejected"})  # the entry changes: every row says so
    rewritten = dict(index.moved({}, [(renamed, rejected)])[0])
    assert set(rewritten) == set(index.keys_of(rejected).values())
    assert {v for v in rewritten.values() if v} == {index.Entry("c1", "rejected", None)}
    assigned = rejected.model_copy(update={"assigned_to": ["p1"]})  # now in the stored assignment order too
    rows = dict(index.moved({}, [(rejected, assigned)])[0])
    assert set(rows) == set(index.keys_of(assigned).values()) and "assignment_count" in index.keys_of(assigned)
    assert set(rows.values()) == {index.Entry("c1", "rejected", None, assigned=True)}


def test_an_entry_decides_status_and_kind_filters_without_the_creative():
    entry = index.Entry("c1", "archived", "video_hosted")
    assert not index.may_match(entry, {})  # archived only when asked for
    assert index.may_match(entry, {"statuses": ["archived"]})
    assert not index.may_match(entry, {"statuses": ["archived"], "format_kinds": ["display"]})
    assert index.may_match(index.Entry("c2", "approved", None), {"tags": ["q4"]})  # the rest needs the creative


def test_counts_answer_totals_and_summaries_of_status_and_kind_filters():
    library = [stored("a", "d1", 1), stored("a", "d2", 2, status="rejected"), stored("a", "v1", 3, video=True),
               stored("a", "old", 0, status="archived")]
    counts = index.moved({}, ((None, s) for s in library))[1]
    assert index.summaries(counts) == (3, {"approved": 2, "rejected": 1}, {"video_hosted": 1, "display_300x250": 2})
    assert index.summaries(counts, ["archived"])[0] == 1
    assert index.summaries(counts, None, ["video_hosted"])[0] == 1
    archived = library[1].model_copy(update={"status": "archived"})
    assert index.summaries(index.moved(counts, [(library[1], archived)])[1])[0] == 2


@pytest.mark.parametrize("field", index.SORT_FIELDS)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_pages_follow_the_order_and_cover_the_library_exactly_once(field, direction):
    rng = random.Random(f"{field}{direction}")
    library = [stored("acct", f"c{i:03}", rng.randrange(50), name=rng.choice(["alpha", "beta", "Gamma", None]),
                      status=rng.choice(["approved", "rejected", "pending_review"]), packages=rng.randrange(3))
               for i in range(60)]
    pages = walk(library, {"sort": {"field": field, "direction": direction}, "pagination": {"max_results": 7}}, ["acct"])
    shown = [c for page in pages for c in page]
    assert sorted(shown) == sorted(s.creative_id for s in library) and len(pages) == 9
    positions = {s.creative_id: index.position(s, field) for s in library}
    assert [positions[c] for c in shown] == sorted((positions[c] for c in shown), reverse=direction == "desc")


@pytest.mark.parametrize("field", ["created_date", "status", "assignment_count"])
def test_a_library_that_changes_between_pages_never_skips_or_repeats_a_creative_that_stayed(field):
    library = [stored("acct", f"c{i:03}", i, status=("approved", "rejected")[i % 2], packages=i % 3) for i in range(40)]
    stayed = {s.creative_id for s in library[::2]}
    counter = iter(range(1000))

    def change(lib: list[StoredCreative]) -> None:
        n = next(counter)
        lib.append(stored("acct", f"new{n}", 5 + n))  # created between pages, in the middle of the order
        victim = next(s for s in lib if s.creative_id not in stayed and s.status != "archived")
        lib.remove(victim)  # another one leaves the list (archived)
        lib.append(victim.model_copy(update={"status": "archived"}))

    for direction in ("asc", "desc"):
        pages = walk([*library], {"sort": {"field": field, "direction": direction},
                                  "pagination": {"max_results": 6}}, ["acct"], between=change)
        shown = [c for page in pages for c in page]
        assert len(shown) == len(set(shown)), "a creative was repeated"
        assert stayed <= set(shown), "a creative that stayed was skipped"


def test_a_selective_filter_stops_at_the_budget_and_goes_on_from_there():
    library = [stored("acct", f"c{i:03}", i, status="rejected" if i % 25 == 0 else "approved") for i in range(200)]
    request = {"filters": {"name_contains": "banner", "statuses": ["rejected"]}, "pagination": {"max_results": 3}}
    pages = walk(library, request, ["acct"], budget=30)
    assert sorted(c for p in pages for c in p) == [f"c{i:03}" for i in range(0, 200, 25)]
    assert any(len(p) < 3 for p in pages[:-1])  # short pages where the budget ran out: cost stays bounded


def test_several_accounts_merge_in_one_order_with_one_cursor():
    library = [stored(account, f"{account}-{i}", i * 2 + (account == "b")) for account in ("a", "b") for i in range(10)]
    library.append(stored("c", "not-asked", 3))
    pages = walk(library, {"sort": {"field": "created_date", "direction": "asc"}, "pagination": {"max_results": 4}},
                 ["a", "b"], budget=3)
    shown = [c for p in pages for c in p]
    assert shown == [f"{'ab'[m % 2]}-{m // 2}" for m in range(20)]


def test_totals_are_exact_from_counts_and_a_running_count_otherwise():
    library = [stored("acct", f"c{i}", i, status="approved" if i % 2 else "rejected") for i in range(10)]
    scan, counts = memory_scan(library), index.moved({}, ((None, s) for s in library))[1]
    exact = parse_query({"filters": {"statuses": ["approved"]}, "pagination": {"max_results": 2}})
    answer = merge(exact, [account_page(exact, "acct", scan, counts)])
    assert answer["query_summary"]["total_matching"] == 5 and answer["pagination"]["total_count"] == 5
    assert answer["status_summary"] == {"approved": 5}
    other = parse_query({"filters": {"name_contains": "banner"}, "pagination": {"max_results": 4}})
    answer = merge(other, [account_page(other, "acct", scan, counts)])
    assert answer["query_summary"]["total_matching"] == 4 and "total_count" not in answer["pagination"]
    query = PageQuery.from_json(other.as_json())
    assert query == other


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_derived_orders_count_the_rows_they_pass_over_against_the_budget(direction):
    """Sorted by status, a page of a rare status walks the creation order: the rows of other
    statuses it passes cost budget (a short page and a cursor, never a walk of the library)."""
    library = [stored("acct", f"c{i:03}", i, status="rejected" if i % 40 == 0 else "approved",
                      packages=1 if i % 50 == 0 else 0) for i in range(200)]
    request = {"filters": {"statuses": ["rejected"]}, "sort": {"field": "status", "direction": direction},
               "pagination": {"max_results": 2}}
    query = parse_query(request)
    counts = index.moved({}, ((None, s) for s in library))[1]
    first = account_page(query, "acct", memory_scan(library), counts, budget=30)
    # ascending: c000, then 30 rows without another; descending: c199 to c170, none of them rejected
    assert first.stopped_at is not None and len(first.items) == (1 if direction == "asc" else 0)
    pages = walk(library, request, ["acct"], budget=30)
    assert sorted(c for p in pages for c in p) == [f"c{i:03}" for i in range(0, 200, 40)]
    unassigned = walk(library, {"filters": {"unassigned": True}, "sort": {"field": "assignment_count", "direction": direction},
                                "pagination": {"max_results": 50}}, ["acct"], budget=60)
    assert sorted(c for p in unassigned for c in p) == sorted(s.creative_id for s in library if not s.assigned_to)


def test_the_status_walk_of_a_group_ends_at_its_last_member():
    """With no cursor, a status group's walk stops once it has seen as many as the counts say."""
    library = [stored("acct", "first", 0, status="rejected")] + [stored("acct", f"c{i:03}", i + 1) for i in range(100)]
    seen = []
    base = memory_scan(library)

    def scan(account_id, field, descending, start, statuses=None):
        for row in base(account_id, field, descending, start, statuses):
            seen.append(row[0])
            yield row
    query = parse_query({"filters": {"statuses": ["rejected"]}, "sort": {"field": "status", "direction": "asc"}})
    counts = index.moved({}, ((None, s) for s in library))[1]
    page = account_page(query, "acct", scan, counts)
    assert [c["creative_id"] for _, c in page.items] == ["first"] and len(seen) == 1
