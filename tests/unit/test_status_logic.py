"""Per (creative, agent) status transitions: outcomes, approvals, content vs metadata changes,
and late events that must not overwrite newer state."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from creative_sync.samples import display_creative
from streams.status import logic
from streams.status.logic import apply_approval, apply_change, apply_result, empty_state
from topics.events import (ApprovalEvent, ApprovalSource, ChangeKind, CreativeChanged, SyncOutcome, SyncResult,
                           SyncState)

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def result(outcome, agent="ag", version=1, when=0, approval=None, reason=None, attempt=1):
    return SyncResult(result_id=f"r-{agent}-{version}-{when}-{outcome}", job_id="j", sales_agent_id=agent, account_id="a",
                      creative_id="c", content_version=version, outcome=outcome, attempt=attempt,
                      approval_status=approval, reason=reason, occurred_at=at(when))


def approval(status, agent="ag", when=5, reason=None):
    return ApprovalEvent(event_id=f"e-{status}-{agent}-{when}", sales_agent_id=agent, account_id="a", creative_id="c",
                         status=status, rejection_reason=reason, source=ApprovalSource.POLL, observed_at=at(when))


def change(kind, version, when=10):
    creative = display_creative("c", name=f"v{version}")
    return CreativeChanged(event_id=f"ch-{version}-{kind}", account_id="a", creative_id="c", change=kind, content_version=version,
                           content_hash=str(version), creative_json=json.dumps(creative), command_id="cmd",
                           created_at=T0, updated_at=at(when))


def run(state, *results):
    for item in results:
        state = apply_result(state, item).state
    return state


def test_a_synced_result_records_the_version_and_the_agents_first_word_on_review():
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCING), result(SyncOutcome.SYNCED, when=1, approval="pending_review"))
    row = state.rows[0]
    assert (row.sync_status, row.approval_status, row.content_version_synced, row.attempts) == \
        (SyncState.SYNCED, "pending_review", 1, 1)


def test_a_failure_keeps_its_reason_and_counts_attempts_until_success_clears_it():
    state = run(empty_state("a", "c"), result(SyncOutcome.FAILED, when=1, reason="503 from agent"),
                result(SyncOutcome.FAILED, when=2, reason="503 from agent", attempt=2))
    assert (state.rows[0].sync_status, state.rows[0].attempts, state.rows[0].last_error) == (SyncState.FAILED, 2, "503 from agent")
    state = run(state, result(SyncOutcome.SYNCED, when=3, approval="approved"))
    assert (state.rows[0].sync_status, state.rows[0].last_error, state.rows[0].attempts) == (SyncState.SYNCED, None, 3)


def test_a_late_result_for_an_older_version_never_overwrites_a_newer_state():
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, version=2, when=5, approval="approved"))
    assert apply_result(state, result(SyncOutcome.FAILED, version=1, when=6)).rows == []
    assert apply_result(state, result(SyncOutcome.SYNCING, version=2, when=1)).rows == []


def test_results_applied_together_give_what_applying_them_one_by_one_gives():
    agents = [f"ag{n}" for n in (3, 1, 2)]
    results = [result(SyncOutcome.SYNCING, agent=a) for a in agents] + \
              [result(SyncOutcome.SYNCED, agent=a, when=1, approval="approved") for a in agents] + \
              [result(SyncOutcome.FAILED, agent="ag1", when=0.5), result(SyncOutcome.SYNCED, agent="ag2", when=1, approval="approved")]
    together = logic.apply_results(empty_state("a", "c"), results)
    assert together.state == run(empty_state("a", "c"), *results)
    assert [r.sales_agent_id for r in together.state.rows] == ["ag1", "ag2", "ag3"]
    assert len(together.rows) == 7  # all but the late failure
    untouched = logic.apply_results(together.state, [result(SyncOutcome.SYNCING, agent="ag1", when=0)])
    assert untouched.state is together.state and untouched.rows == []


def test_approvals_update_the_row_but_a_late_one_does_not():
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, when=1, approval="pending_review"))
    state = apply_approval(state, approval("rejected", when=5, reason="Too small")).state
    assert (state.rows[0].approval_status, state.rows[0].rejection_reason) == ("rejected", "Too small")
    assert apply_approval(state, approval("approved", when=2)).rows == []
    assert apply_approval(state, approval("rejected", when=6, reason="Too small")).rows == []  # nothing new
    assert apply_approval(state, approval("approved", agent="other")).rows == []  # never synced there


def test_skipped_rows_carry_the_reason_and_count_as_skipped():
    state = run(empty_state("a", "c"), result(SyncOutcome.SKIPPED, agent="video", reason="Display format not supported"),
                result(SyncOutcome.SYNCED, agent="ag", when=1, approval="approved"))
    rows = {r.sales_agent_id: r for r in state.rows}
    assert rows["video"].skip_reason == "Display format not supported"
    assert logic.summary(state.rows) == {"approved": 1, "pending": 0, "rejected": 0, "failed": 0, "skipped": 1}


def test_a_content_change_re_syncs_only_where_synced_and_a_metadata_change_nowhere():
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, agent="ag", when=1, approval="approved"),
                result(SyncOutcome.SKIPPED, agent="video", reason="no"),
                result(SyncOutcome.FAILED, agent="refused", when=1, reason="terminal"))
    metadata = apply_change(state, change(ChangeKind.METADATA, 1), at(20))
    assert metadata.resyncs == [] and metadata.rows == []
    content = apply_change(metadata.state, change(ChangeKind.CONTENT, 2), at(21))
    assert [(agent, j.content_version) for agent, j in content.resyncs] == [("ag", 2)]
    assert json.loads(content.resyncs[0][1].creative_json)["name"] == "v2"
    assert [r.sync_status for r in content.rows] == [SyncState.PENDING]
    assert apply_change(content.state, change(ChangeKind.CONTENT, 2), at(22)).resyncs == []  # redelivered


def test_a_content_change_also_follows_a_delivery_on_its_way_which_carries_the_older_version():
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCING, agent="queued", when=1))
    content = apply_change(state, change(ChangeKind.CONTENT, 2), at(20))
    assert [(agent, j.content_version) for agent, j in content.resyncs] == [("queued", 2)]
    # The older delivery's answer, from before the change, does not pass for the new version.
    late = apply_result(content.state, result(SyncOutcome.SYNCED, agent="queued", version=1, when=10, approval="approved"))
    assert late.rows == [] and late.state.rows[0].sync_status is SyncState.PENDING
    done = apply_result(late.state, result(SyncOutcome.SYNCED, agent="queued", version=2, when=30, approval="approved"))
    assert (done.state.rows[0].sync_status, done.state.rows[0].content_version_synced) == (SyncState.SYNCED, 2)


def test_a_change_of_a_creative_synced_nowhere_is_neither_acted_on_nor_remembered():
    state = empty_state("a", "c")
    for kind in (ChangeKind.CREATED, ChangeKind.CONTENT, ChangeKind.METADATA):
        out = apply_change(state, change(kind, 2), at(1))
        assert out.state == state and out.rows == [] and out.resyncs == []


def _agent_approval(status, when, agent_when, reason=None):
    return ApprovalEvent(event_id=f"e-{status}-{when}-{agent_when}", sales_agent_id="ag", account_id="a", creative_id="c",
                         status=status, rejection_reason=reason, source=ApprovalSource.POLL, observed_at=at(when),
                         agent_updated_at=at(agent_when))


@pytest.mark.parametrize("skew_s", [-300, 300])
def test_an_agents_clock_minutes_off_never_throws_its_approvals_away_after_a_resync(skew_s):
    """The agent stamps its decisions with its own clock; a re-sync answered at our time 20 is
    approved at the agent's 22 + skew: applied, whatever the skew."""
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, when=1, approval="pending_review"))
    state = apply_approval(state, _agent_approval("approved", when=3, agent_when=2 + skew_s)).state
    state = apply_change(state, change(ChangeKind.CONTENT, 2, when=10), at(10)).state
    state = run(state, result(SyncOutcome.SYNCED, version=2, when=20, approval="pending_review"))
    assert state.rows[0].approval_status == "pending_review"
    state = apply_approval(state, _agent_approval("approved", when=25, agent_when=22 + skew_s)).state
    assert (state.rows[0].approval_status, state.rows[0].content_version_synced) == ("approved", 2)


def test_an_agents_older_decision_by_its_own_clock_does_not_overwrite_a_newer_one():
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, when=1, approval="pending_review"))
    state = apply_approval(state, _agent_approval("rejected", when=5, agent_when=-200, reason="No")).state
    assert apply_approval(state, _agent_approval("approved", when=6, agent_when=-250)).rows == []
    assert apply_approval(state, _agent_approval("approved", when=7, agent_when=-150)).rows[0].approval_status == "approved"


def test_a_decision_observed_before_our_delivery_was_answered_is_older_news():
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, when=10, approval="pending_review"))
    assert apply_approval(state, _agent_approval("approved", when=9, agent_when=500)).rows == []


def test_a_decision_read_before_the_deliverys_answer_arrives_keeps_both():
    """A poll that finds the creative approved can reach the status processor before the answer of
    the sync call that delivered it (two topics): the answer still marks the row synced (it was
    stuck in syncing once, in CI), and the later-observed decision is not replaced by the answer's
    first word."""
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCING, when=0))
    state = apply_approval(state, approval("approved", when=5)).state
    change = apply_result(state, result(SyncOutcome.SYNCED, when=3, approval="pending_review"))
    row = change.state.rows[0]
    assert (row.sync_status, row.approval_status, row.content_version_synced, row.attempts) == \
        (SyncState.SYNCED, "approved", 1, 1)
    assert (row.updated_at, row.sync_updated_at, row.last_sync_at) == (at(5), at(3), at(3))
    # ... while an answer given after the decision was observed is the agent's newer word, and a
    # sync outcome older than the row's sync state is still older news.
    later = apply_result(state, result(SyncOutcome.SYNCED, when=6, approval="pending_review")).state.rows[0]
    assert (later.approval_status, later.updated_at) == ("pending_review", at(6))
    assert apply_result(change.state, result(SyncOutcome.FAILED, when=2)).rows == []


@pytest.mark.parametrize("skew_s", [-300, 0, 300])
def test_a_resynced_versions_approval_read_before_its_answer_is_not_taken_for_the_old_one(skew_s):
    """A re-sync's row still says "approved" (the old version's word) when a poll finds the new
    version approved before the delivery's answer arrives (two topics): the decision is the same
    word, but newer news, and the answer's "pending_review" must not replace it (in CI the row
    stayed pending_review for ever: the engine, told "approved", asked no more)."""
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, when=1, approval="pending_review"))
    state = apply_approval(state, _agent_approval("approved", when=3, agent_when=2 + skew_s)).state
    state = apply_change(state, change(ChangeKind.CONTENT, 2, when=10), at(10)).state
    state = apply_approval(state, _agent_approval("approved", when=25, agent_when=22 + skew_s)).state
    row = run(state, result(SyncOutcome.SYNCED, version=2, when=20, approval="pending_review")).rows[0]
    assert (row.sync_status, row.approval_status, row.content_version_synced) == (SyncState.SYNCED, "approved", 2)
    # The old version's decision observed again (a webhook redelivered late) is no news about the new one.
    again = apply_approval(state, _agent_approval("approved", when=26, agent_when=22 + skew_s))
    assert again.rows == []
    stale = apply_change(run(state, result(SyncOutcome.SYNCED, version=2, when=20, approval="pending_review")),
                         change(ChangeKind.CONTENT, 3, when=30), at(30)).state
    assert apply_approval(stale, _agent_approval("approved", when=31, agent_when=22 + skew_s)).rows == []


def test_a_decision_that_arrives_before_any_row_of_its_agent_is_held_for_the_row():
    """A poll a second after the call can reach the status processor before both the matcher's
    queued result and the delivery's answer (the worker fetches each topic on its own): the
    decision waits in the state and is applied when the row comes (in CI it was lost once, and
    the agent, no longer asked, stayed pending_review for ever)."""
    held = apply_approval(empty_state("a", "c"), approval("approved", when=5))
    assert held.rows == [] and [(h.sales_agent_id, h.status) for h in held.state.held_decisions] == [("ag", "approved")]
    state = apply_result(held.state, result(SyncOutcome.SYNCING, when=0)).state
    assert (state.rows[0].approval_status, state.held_decisions) == ("approved", [])
    row = run(state, result(SyncOutcome.SYNCED, when=3, approval="pending_review")).rows[0]
    assert (row.sync_status, row.approval_status, row.updated_at) == (SyncState.SYNCED, "approved", at(5))
    # Another agent's row does not take it.
    other = apply_result(held.state, result(SyncOutcome.SYNCING, agent="other", when=0)).state
    assert [h.sales_agent_id for h in other.held_decisions] == ["ag"]


def test_a_sweeps_decision_about_a_creative_never_delivered_there_is_not_held():
    sweep = approval("approved", when=5).model_copy(update={"source": ApprovalSource.SWEEP})
    state = empty_state("a", "c")
    assert apply_approval(state, sweep).state is state


def test_held_decisions_are_bounded_newest_per_agent_and_by_age_and_count():
    state = empty_state("a", "c")
    for when in (5, 3):  # the older observation of the same agent does not replace the newer
        state = apply_approval(state, approval("rejected" if when == 3 else "approved", when=when)).state
    assert [(h.status, h.observed_at) for h in state.held_decisions] == [("approved", at(5))]
    state = apply_approval(state, approval("approved", agent="late", when=5 + 2 * 3600)).state
    assert [h.sales_agent_id for h in state.held_decisions] == ["late"]  # held for an hour at most
    for n in range(logic.MAX_HELD_DECISIONS + 4):
        state = apply_approval(state, approval("approved", agent=f"ag{n:02d}", when=7300 + n)).state
    assert len(state.held_decisions) == logic.MAX_HELD_DECISIONS
    assert state.held_decisions[-1].sales_agent_id == f"ag{logic.MAX_HELD_DECISIONS + 3:02d}"


def test_a_decision_dated_years_ahead_cannot_freeze_the_row():
    """A time far in the future would order every later decision before it: it is not believed."""
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, when=1, approval="pending_review"))
    state = apply_approval(state, _agent_approval("rejected", when=5, agent_when=10 * 365 * 86400, reason="Frozen")).state
    assert state.rows[0].approval_status == "rejected" and state.rows[0].agent_updated_at is None
    assert apply_approval(state, _agent_approval("approved", when=6, agent_when=7)).rows[0].approval_status == "approved"


def test_a_decision_about_a_creative_never_synced_to_that_agent_changes_nothing():
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, agent="ag", when=1, approval="pending_review"))
    other = _agent_approval("rejected", when=5, agent_when=5).model_copy(update={"sales_agent_id": "b~ag"})
    assert apply_approval(state, other).rows == []


def test_a_rejection_is_told_apart_from_a_row_that_stays_rejected():
    from streams.status.logic import newly_rejected
    from topics.events import CreativeSyncState, SyncState, SyncStatus

    def state(approval: str | None) -> CreativeSyncState:
        row = SyncStatus(account_id="acct", creative_id="c1", sales_agent_id="acct~a", sync_status=SyncState.SYNCED,
                         approval_status=approval, updated_at=T0)
        return CreativeSyncState(account_id="acct", creative_id="c1", rows=[row])
    assert newly_rejected(state("approved"), state("rejected")) and newly_rejected(None, state("suspended"))
    assert not newly_rejected(state("rejected"), state("rejected")) and not newly_rejected(state(None), state("approved"))


def test_agents_removed_before_the_cutoff_are_the_expired_ones():
    from types import SimpleNamespace as Agent
    agents = [Agent(sales_agent_id="gone-long-ago", deleted=True, updated_at=at(0)),
              Agent(sales_agent_id="gone-just-now", deleted=True, updated_at=at(100)),
              Agent(sales_agent_id="still-here", deleted=False, updated_at=at(0))]
    assert logic.removed_before(agents, cutoff=at(50)) == {"gone-long-ago": at(0)}
    assert logic.removed_before(agents, cutoff=at(101)) == {"gone-long-ago": at(0), "gone-just-now": at(100)}


def test_a_state_without_the_expired_agents_rows_is_new_unchanged_or_gone():
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, agent="kept"), result(SyncOutcome.SYNCED, agent="gone"))
    after = logic.without_agents(state, frozenset({"gone"}))
    assert [r.sales_agent_id for r in after.rows] == ["kept"] and [r.sales_agent_id for r in state.rows] == ["gone", "kept"]
    assert logic.without_agents(after, frozenset({"gone"})) is after  # nothing of theirs: the same object, no write
    assert logic.without_agents(after, frozenset({"kept"})) is None  # no row left: the state is removed
    waiting = apply_approval(empty_state("a", "c"), approval("approved", agent="gone")).state  # held for a row
    assert logic.without_agents(waiting, frozenset({"gone"})) is None  # a removed agent's decision goes too


def test_an_archived_creative_with_status_rows_is_marked_once_and_unmarked_when_it_comes_back():
    archived = change(ChangeKind.ARCHIVED, 1, when=30).model_copy(update={"status": "archived"})
    mark = logic.archive_mark(archived, synced=True, marked=None)
    assert (mark.account_id, mark.creative_id, mark.archived_at) == ("a", "c", at(30))
    later = archived.model_copy(update={"updated_at": at(90)})
    assert logic.archive_mark(later, synced=True, marked=mark) is mark  # redelivered: the first time stays
    assert logic.archive_mark(archived, synced=False, marked=None) is None  # no status rows: nothing to drop later
    back = change(ChangeKind.METADATA, 1, when=40).model_copy(update={"status": "approved", "changed_fields": ["status"]})
    assert logic.archive_mark(back, synced=True, marked=mark) is None  # brought back: its rows stay
    assert logic.archive_mark(change(ChangeKind.CONTENT, 2), synced=True, marked=None) is None


def test_the_status_processor_hears_of_content_changes_archivings_and_status_changes_only():
    from streams.library.logic import concerns_status

    assert concerns_status(change(ChangeKind.CONTENT, 2)) and concerns_status(change(ChangeKind.ARCHIVED, 1))
    assert concerns_status(change(ChangeKind.METADATA, 1).model_copy(update={"changed_fields": ["status"]}))
    assert not concerns_status(change(ChangeKind.METADATA, 1).model_copy(update={"changed_fields": ["name"]}))
    assert not concerns_status(change(ChangeKind.CREATED, 1))


def test_the_time_from_delivery_to_the_agents_first_decision_is_measured_once():
    state = run(empty_state("a", "c"), result(SyncOutcome.SYNCED, agent="ag", when=1, approval="pending_review"))
    decided = apply_approval(state, approval("approved", when=61))
    assert decided.decided_after_s == [60.0]
    assert apply_approval(decided.state, approval("rejected", when=90)).decided_after_s == []  # a later change of mind
