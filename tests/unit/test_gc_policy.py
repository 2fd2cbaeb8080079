"""The processes' collector policy: what survives a full collection is frozen, and thawed again
once the interval has passed (so that reference cycles among old objects are still collected)."""
import gc

import pytest

from creative_sync import gc_policy


@pytest.fixture
def policy():
    gc.unfreeze()
    yield gc_policy
    gc_policy.uninstall()


def test_a_full_collection_freezes_its_survivors_and_younger_collections_leave_them_be(policy):
    policy.install(thaw_every_s=3600)
    survivor = [[] for _ in range(1000)]
    gc.collect()
    frozen = gc.get_freeze_count()
    assert frozen >= len(survivor)
    gc.collect(1)  # younger generations leave the frozen ones be
    assert gc.get_freeze_count() >= frozen

    policy.uninstall()
    assert gc.get_freeze_count() == 0


def test_after_the_interval_the_next_full_collection_sees_everything(policy):
    callback = policy.install(thaw_every_s=0)
    assert policy.install() is callback  # installed once
    cycle: list = []
    cycle.append(cycle)  # a cycle: only the collector can free it
    gc.freeze()
    del cycle
    gc.collect()  # thaw: everything back in sight ...
    assert gc.get_freeze_count() == 0
    collected = gc.collect()  # ... and the cycle among formerly frozen objects is collected
    assert collected >= 1


def test_the_youngest_generation_is_collected_less_often_until_uninstalled(policy):
    default = gc.get_threshold()
    policy.install(young_threshold=12_345)
    assert gc.get_threshold() == (12_345, *default[1:])
    policy.uninstall()
    assert gc.get_threshold() == default
