"""Per-partition order in a worker: a hole is fetched again, never skipped over."""
from streams.runtime import Admission, PartitionOrder


def admit_all(order, offsets, *, committed=None, generation=1, gaps=()):
    known = lambda start, end: any(s <= start and end <= e for s, e in gaps)  # noqa: E731
    return [order.admit("p0", o, generation=generation, committed=committed, known_gap=known)[0] for o in offsets]


def test_consecutive_offsets_and_redeliveries_are_processed():
    order = PartitionOrder()
    assert admit_all(order, [5, 6, 7, 6, 7, 8], committed=5) == [Admission.PROCESS] * 6


def test_a_hole_rewinds_once_and_later_events_wait_until_it_is_filled():
    order = PartitionOrder()
    decisions = admit_all(order, [72, 73, 74, 79, 80, 81, 75, 76, 77, 78, 79, 80], committed=72)
    assert decisions == [Admission.PROCESS] * 3 + [Admission.REWIND, Admission.SKIP, Admission.SKIP] + [Admission.PROCESS] * 6
    assert order.admit("p0", 79, generation=1, committed=72)[1] == 79


def test_a_lost_head_after_a_restart_is_fetched_again_from_the_committed_offset():
    order = PartitionOrder()
    assert order.admit("p0", 60, generation=1, committed=54) == (Admission.REWIND, 54)
    assert order.admit("p0", 54, generation=1, committed=54) == (Admission.PROCESS, 54)


def test_holes_the_consumer_knows_about_and_unknown_starts_are_not_rewound():
    assert admit_all(PartitionOrder(), [1, 5, 6], committed=1, gaps=[(2, 5)]) == [Admission.PROCESS] * 3
    assert admit_all(PartitionOrder(), [40, 41], committed=None) == [Admission.PROCESS] * 2


def test_a_rebalance_forgets_what_it_expected():
    order = PartitionOrder()
    admit_all(order, [10, 11], committed=10, generation=1)
    assert admit_all(order, [30], committed=30, generation=2) == [Admission.PROCESS]
