"""Idempotent state updates: a state remembers the input positions it has already folded in.

Detection's input is at-least-once. The processing stage re-processes ``errors``
records after a crash or a rebalance (new signal bundles carrying the same
signals), and faust re-delivers detection's own topics from their last commit
after a rebalance, on top of state that already counted them. Kafka
transactions would need the stage, faust's agents and their changelogs in one
transaction; instead every table value keeps, per source partition, the highest
input offset it has applied, so a replay changes nothing.

That is exact because input from one source partition reaches one value in
offset order: the stage reads a partition in order and publishes a batch's
outputs before it commits (a new owner starts at or before the old owner's
last output, and replays it identically), and detection reads each of its
partitions in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class AppliedOffsets:
    """Source partition → highest offset applied (string keys: the value is stored as JSON)."""

    high: dict[str, int] = field(default_factory=dict)

    def seen(self, partition: int | None, offset: int | None) -> bool:
        """True when the input at ``partition``/``offset`` is already in the state (input without a position
        — tools, tests, records from before positions were recorded — is never recognised)."""
        if partition is None or offset is None:
            return False
        return offset <= self.high.get(str(partition), -1)

    def record(self, partition: int | None, offset: int | None) -> None:
        if partition is None or offset is None:
            return
        key = str(partition)
        if offset > self.high.get(key, -1):
            self.high[key] = offset

    def take(self, partition: int | None, offset: int | None) -> bool:
        """Record the position; False (and nothing recorded) when it was already applied."""
        if self.seen(partition, offset):
            return False
        self.record(partition, offset)
        return True
