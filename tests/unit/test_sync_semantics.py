"""sync_creatives semantics as pure functions: parsing, strict vs lenient, patch, scoping,
delete_missing, assignments, idempotency verdicts."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from creative_sync.samples import display_creative, sync_request, video_creative
from streams.library import logic
from streams.library.logic import Verdict, apply_sync, idempotency_verdict
from streams.library.requests import RequestRejected, creative_problems, parse_sync_request, payload_hash, task_id_for
from topics.events import IdempotencyRecord

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BAD = {**display_creative("bad"), "format_id": None, "format_kind": "hologram"}


def run(request: dict, existing=None, library=(), command_id="cmd-1"):
    return apply_sync(parse_sync_request(request), command_id=command_id, existing=existing or {},
                      library_ids=list(library), now=T0, validate=creative_problems)


def stored(decision):
    return {s.creative_id: s for s in decision.writes}


def test_strict_mode_turns_any_invalid_creative_into_the_error_branch_and_applies_nothing():
    decision = run(sync_request("a", [display_creative("ok"), BAD]))
    assert decision.errors and decision.writes == [] and decision.events == []
    assert all(e["field"].startswith("creatives[1]") for e in decision.errors)


def test_lenient_mode_fails_the_invalid_creative_and_applies_the_rest():
    decision = run(sync_request("a", [display_creative("ok"), BAD], validation_mode="lenient"))
    assert [(o.creative_id, o.action) for o in decision.outcomes] == [("ok", "created"), ("bad", "failed")]
    assert list(stored(decision)) == ["ok"] and decision.outcomes[1].errors


def test_patch_merges_into_the_stored_creative_and_is_validated_after_merging():
    first = stored(run(sync_request("a", [display_creative("c1", tags=["x"])])))
    patched = run(sync_request("a", [{"creative_id": "c1", "tags": ["x", "y"]}], patch=True), first, command_id="cmd-2")
    assert patched.outcomes[0].action == "updated" and patched.outcomes[0].changes == ("tags",)
    assert patched.events[0].change.value == "METADATA"
    broken = run(sync_request("a", [{"creative_id": "new", "tags": ["x"]}], patch=True, validation_mode="lenient"), first)
    assert broken.outcomes[0].action == "failed"  # a new creative cannot be a partial one


def test_creative_ids_limits_the_sync_to_those_creatives():
    decision = run(sync_request("a", [display_creative("c1"), display_creative("c2")], creative_ids=["c2"]))
    assert [o.creative_id for o in decision.outcomes] == ["c2"]


def test_delete_missing_archives_what_the_request_leaves_out():
    first = stored(run(sync_request("a", [display_creative("keep"), display_creative("old")])))
    decision = run(sync_request("a", [display_creative("keep")], delete_missing=True), first, library=first,
                   command_id="cmd-2")
    assert {o.creative_id: o.action for o in decision.outcomes} == {"keep": "unchanged", "old": "deleted"}
    assert stored(decision)["old"].status == "archived" and decision.events[0].change.value == "ARCHIVED"


def test_assignments_add_packages_and_report_unknown_creatives():
    decision = run(sync_request("a", [display_creative("c1")], assignments=[
        {"creative_id": "c1", "package_id": "p1"}, {"creative_id": "nope", "package_id": "p1"}]))
    by_id = {o.creative_id: o for o in decision.outcomes}
    assert by_id["c1"].assigned_to == ("p1",) and stored(decision)["c1"].assigned_to == ["p1"]
    assert stored(decision)["c1"].assigned_at == {"p1": T0}
    assert "p1" in by_id["nope"].assignment_errors


@pytest.mark.parametrize("request_, field", [
    (sync_request("a", [display_creative("c")] * 2), "creatives[1].creative_id"),
    (sync_request("a", [display_creative(f"c{i}") for i in range(101)]), "creatives"),
    (sync_request("a", [display_creative("c")], delete_missing=True, creative_ids=["c"]), "delete_missing"),
    ({**sync_request("a", [display_creative("c")]), "idempotency_key": "short"}, "idempotency_key"),
    ({"idempotency_key": "k" * 16, "creatives": []}, "account.account_id"),
    (sync_request("a", [display_creative("c")], adcp_version="4.0"), "adcp_version"),
])
def test_envelope_problems_reject_the_request(request_, field):
    with pytest.raises(RequestRejected) as rejected:
        parse_sync_request(request_)
    assert any((p.field or "").startswith(field) for p in rejected.value.problems)


def test_the_deprecated_format_id_and_3_2_format_kind_are_both_accepted():
    request = parse_sync_request(sync_request("a", [display_creative("d"), video_creative("v")], adcp_version="3.1"))
    assert request.invalid == {} and request.adcp_version == "3.1"


def record(payload_hash_: str, offset: int = 10, at: datetime = T0) -> IdempotencyRecord:
    return IdempotencyRecord(account_id="a", idempotency_key="k" * 16, payload_hash=payload_hash_, task_id="t",
                             response_json="{}", source_offset=offset, recorded_at=at)


@pytest.mark.parametrize("existing, request_hash, offset, now, verdict", [
    (None, "h1", 10, T0, Verdict.NEW),
    (record("h1"), "h1", 10, T0, Verdict.REDELIVERY),
    (record("h1"), "h1", 11, T0, Verdict.REPLAY),
    (record("h1"), "h2", 11, T0, Verdict.CONFLICT),
    (record("h1"), "h2", 11, T0 + logic.REPLAY_TTL + timedelta(seconds=1), Verdict.NEW),
])
def test_idempotency_verdicts(existing, request_hash, offset, now, verdict):
    assert idempotency_verdict(existing, request_hash=request_hash, source_offset=offset, now=now) is verdict


def test_task_ids_are_the_same_for_a_retry_and_differ_for_another_payload():
    body = sync_request("a", [display_creative("c")], idempotency_key="k" * 16)
    other = sync_request("a", [display_creative("d")], idempotency_key="k" * 16)
    assert task_id_for("a", "k" * 16, payload_hash(body)) == task_id_for("a", "k" * 16, payload_hash(dict(body)))
    assert task_id_for("a", "k" * 16, payload_hash(body)) != task_id_for("a", "k" * 16, payload_hash(other))


@pytest.mark.parametrize("asked, served, code", [
    ("3.2", "3.2", None), ("3.0.4", "3.0", None), ("3.3", "3.2", None), ("3.17", "3.2", None),
    ("4.0", None, "VERSION_UNSUPPORTED"), ("2.5", None, "VERSION_UNSUPPORTED"), ("three", None, "INVALID_REQUEST"),
])
def test_a_later_minor_is_served_the_highest_we_speak_and_another_major_is_unsupported(asked, served, code):
    request = sync_request("a", [display_creative("c")], adcp_version=asked)
    if code is None:
        assert parse_sync_request(request).adcp_version == served
    else:
        with pytest.raises(RequestRejected) as rejected:
            parse_sync_request(request)
        assert rejected.value.problems[0].code == code and rejected.value.problems[0].field == "adcp_version"
