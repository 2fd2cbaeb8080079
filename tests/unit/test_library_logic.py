"""The library's upsert semantics as pure functions: content vs metadata, idempotent replays."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.library.logic import apply_upserts, creative_key, split_creative, sync_response
from topics.events import ChangeKind

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BANNER = {"creative_id": "c1", "name": "Banner", "format_id": {"agent_url": "https://f.example", "id": "display_300x250"},
          "assets": {"image": {"url": "https://cdn.example/a.png", "width": 300, "height": 250}}, "tags": ["q4"]}


def apply(creatives, existing=None, command_id="cmd-1", now=T0, source_offset=-1):
    return apply_upserts(account_id="acct", command_id=command_id, creatives=creatives, existing=existing or {}, now=now,
                         source_offset=source_offset)


def stored_after(decision):
    return {s.creative_id: s for s in decision.writes}


def test_new_creative_is_created_at_content_version_1():
    decision = apply([BANNER])
    assert [o.action for o in decision.outcomes] == ["created"]
    [event] = decision.events
    assert (event.change, event.content_version, event.format_id) == (ChangeKind.CREATED, 1, "https://f.example#display_300x250")
    assert event.tags == ["q4"] and event.name == "Banner"


def test_asset_change_is_a_content_change_and_bumps_the_version():
    first = stored_after(apply([BANNER]))
    changed = {**BANNER, "assets": {"image": {"url": "https://cdn.example/b.png", "width": 300, "height": 250}}}
    decision = apply([changed], first, "cmd-2", T0 + timedelta(minutes=1))
    [event] = decision.events
    assert event.change is ChangeKind.CONTENT and event.content_version == 2
    assert decision.outcomes[0].action == "updated" and decision.outcomes[0].changes == ("assets",)
    assert event.created_at == T0 and event.updated_at == T0 + timedelta(minutes=1)


def test_name_and_tags_change_is_metadata_only_and_keeps_the_version():
    first = stored_after(apply([BANNER]))
    decision = apply([{**BANNER, "name": "Banner v2", "tags": ["q4", "holiday"]}], first, "cmd-2")
    [event] = decision.events
    assert event.change is ChangeKind.METADATA and event.content_version == 1
    assert event.changed_fields == ["name", "tags"]


def test_identical_creative_is_unchanged_and_emits_nothing():
    first = stored_after(apply([BANNER]))
    decision = apply([dict(BANNER)], first, "cmd-2")
    assert [o.action for o in decision.outcomes] == ["unchanged"] and decision.events == [] and decision.writes == []


def test_unknown_fields_count_as_content():
    content, metadata = split_creative({**BANNER, "brand_new_field": 1})
    assert "brand_new_field" in content and "creative_id" not in content and "name" in metadata


def test_a_replayed_command_yields_the_same_outcomes_and_identical_events():
    first = apply([BANNER, {**BANNER, "creative_id": "c2"}])
    replay = apply([BANNER, {**BANNER, "creative_id": "c2"}], stored_after(first), "cmd-1", now=T0 + timedelta(hours=1))
    assert replay.outcomes == first.outcomes
    assert replay.events == first.events  # same ids, same timestamps: downstream dedupes
    assert replay.writes == []


def test_event_ids_are_deterministic_and_distinct_per_command_and_creative():
    a, b = apply([BANNER]), apply([BANNER], command_id="cmd-other")
    assert a.events[0].event_id == apply([BANNER]).events[0].event_id
    assert a.events[0].event_id != b.events[0].event_id


def test_response_follows_the_adcp_success_shape():
    first = stored_after(apply([BANNER]))
    decision = apply([{**BANNER, "name": "x"}, {**BANNER, "creative_id": "c9"}], first, "cmd-2")
    assert sync_response(decision.outcomes) == {"creatives": [
        {"creative_id": "c1", "action": "updated", "changes": ["name"]}, {"creative_id": "c9", "action": "created"}]}


def test_creative_key_joins_account_and_creative():
    assert creative_key("acct", "c1") == "acct/c1"


def test_a_command_redelivered_after_later_commands_is_not_applied_again():
    v1 = stored_after(apply([BANNER], command_id="cmd-1", source_offset=10))
    v2_body = {**BANNER, "assets": {"image": {"url": "https://cdn.example/v2.png"}}}
    first_v2 = apply([v2_body], v1, "cmd-2", source_offset=11)
    v3 = stored_after(apply([{**BANNER, "assets": {"image": {"url": "https://cdn.example/v3.png"}}}],
                            stored_after(first_v2), "cmd-3", source_offset=12))
    replay_v2 = apply([v2_body], v3, "cmd-2", source_offset=11)
    assert replay_v2.writes == [] and replay_v2.events == first_v2.events  # exactly the original event, version 2
    assert replay_v2.outcomes == first_v2.outcomes


def test_a_command_older_than_the_remembered_changes_is_skipped_not_reapplied():
    rows = stored_after(apply([BANNER], command_id="cmd-0", source_offset=0))
    for i in range(1, 12):
        rows = stored_after(apply([{**BANNER, "assets": {"n": i}}], rows, f"cmd-{i}", source_offset=i))
    stale = apply([{**BANNER, "assets": {"n": 1}}], rows, "cmd-1", source_offset=1)
    assert stale.writes == [] and stale.events == [] and stale.outcomes[0].action == "unchanged"
    assert rows["c1"].content_version == 12 and len(rows["c1"].recent_changes) == 8


def test_every_remembered_change_replays_its_own_version_and_the_row_keeps_its_json_once():
    rows, firsts = {}, []
    for i in range(4):
        body = {**BANNER, "assets": {"image": {"url": f"https://cdn.example/v{i}.png"}}}
        first = apply([body], rows, f"cmd-{i}", source_offset=i)
        rows = stored_after(first)
        firsts.append((body, first))
    row = rows["c1"]
    assert row.recent_changes[-1].creative_json == ""  # the latest is the row's own JSON, not a second copy
    assert all(c.creative_json for c in row.recent_changes[:-1])
    for i, (body, first) in enumerate(firsts):
        replay = apply([body], rows, f"cmd-{i}", source_offset=i)
        assert replay.events == first.events and replay.writes == []


def test_remembered_changes_are_bounded_by_bytes_too():
    from streams.library.logic import RECENT_BYTES
    rows = {}
    big = "x" * (RECENT_BYTES // 3)
    for i in range(6):
        rows = stored_after(apply([{**BANNER, "assets": {"blob": f"{i}{big}"}}], rows, f"cmd-{i}", source_offset=i))
    kept = rows["c1"].recent_changes
    assert sum(len(c.creative_json) for c in kept) <= RECENT_BYTES and 2 <= len(kept) < 6
