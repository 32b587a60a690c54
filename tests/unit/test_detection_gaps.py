"""Detection's input positions: checkpoint keys on the changelog partition they describe, and the holes
between a checkpoint and the records faust delivers (the records faust skipped after a rebalance)."""

from __future__ import annotations

import pytest

from stream_processors.detection_agents.context import partition_of
from stream_processors.detection_agents.gaps import CHECKPOINT_PREFIX, checkpoint_key, holes, is_checkpoint


@pytest.mark.parametrize("partitions", [1, 4, 12, 64])
def test_each_partition_has_its_own_checkpoint_key_on_that_partition(partitions: int) -> None:
    keys = [checkpoint_key(p, partitions) for p in range(partitions)]
    assert [partition_of(k, partitions) for k in keys] == list(range(partitions))
    assert len(set(keys)) == partitions and all(k.startswith(CHECKPOINT_PREFIX) for k in keys)


def test_without_a_position_nothing_before_the_first_record_is_a_hole() -> None:
    assert holes(None, [40, 41, 42]) == ([], 42)


def test_a_partition_whose_first_records_faust_skipped_shows_the_hole_from_its_start() -> None:
    # no checkpoint and nothing committed: the agent starts before the partition's first offset (0)
    assert holes(-1, [1, 2]) == ([(0, 1)], 2)
    assert holes(-1, [0, 1]) == ([], 1)


def test_records_following_the_checkpoint_leave_no_hole() -> None:
    assert holes(9, [10, 11, 12]) == ([], 12)


def test_a_record_past_the_checkpoint_shows_the_hole_before_it() -> None:
    assert holes(9, [15, 16]) == ([(10, 15)], 16)


def test_holes_inside_a_batch_are_found_too() -> None:
    assert holes(9, [10, 13, 14, 20]) == ([(11, 13), (15, 20)], 20)


def test_a_replay_before_the_checkpoint_is_no_hole_and_keeps_the_checkpoint() -> None:
    # a new owner starts at faust's committed offset, before what the state already applied
    assert holes(50, [45, 46, 47]) == ([], 50)
    assert holes(50, [48, 49, 50, 51, 55]) == ([(52, 55)], 55)


def test_no_records_keep_the_checkpoint() -> None:
    assert holes(7, []) == ([], 7)
    assert holes(None, []) == ([], None)


def test_checkpoint_keys_are_told_apart_from_state_keys() -> None:
    assert is_checkpoint(checkpoint_key(3, 12))
    assert not any(is_checkpoint(k) for k in (b"billing", b"4bf92f3577b34da6a3ce929d0e0e4736", b"a" * 32))
