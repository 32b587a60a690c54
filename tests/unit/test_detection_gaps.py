"""detect-issues' per-partition checkpoint key lands on the changelog partition it describes."""

from __future__ import annotations

import pytest

from stream_processors.detection.context import partition_of
from stream_processors.detection.gaps import CHECKPOINT_PREFIX, checkpoint_key


@pytest.mark.parametrize("partitions", [1, 4, 12, 64])
def test_each_partition_has_its_own_checkpoint_key_on_that_partition(partitions: int) -> None:
    keys = [checkpoint_key(p, partitions) for p in range(partitions)]
    assert [partition_of(k, partitions) for k in keys] == list(range(partitions))
    assert len(set(keys)) == partitions and all(k.startswith(CHECKPOINT_PREFIX) for k in keys)
