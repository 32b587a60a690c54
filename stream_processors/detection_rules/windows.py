"""Tumbling one-minute counts on event time, with a grace period for late events.

Why not faust's windowed tables: they pick the changelog partition and the
window's time from ``current_event()`` (the Kafka record timestamp unless told
otherwise), which is wrong when a batch from several partitions is processed
with ``take_events``, and their ``(key, window)`` tuple keys hash to other
partitions than the source key when ``use_partitioner`` is on. A key's few open
minutes fit in a small dict that lives inside that key's table value, so the
window state is changelogged and recovered together with everything else about
the key, on the key's own partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MINUTE = 60.0
MAX_GAP_MINUTES = 1_440


def minute_of(ts: float) -> int:
    """Start of the event-time minute, in epoch seconds."""
    return int(ts // MINUTE) * 60


@dataclass(slots=True)
class Added:
    minute: int
    count: int  # count of the event's minute after adding it
    late: bool  # beyond grace: not counted here (ClickHouse still counts it by event minute)
    closed: list[tuple[int, int]] = field(default_factory=list)  # (minute, count), oldest first, gaps as 0


@dataclass(slots=True)
class MinuteWindows:
    """Open minutes of one key. A minute closes once the key's watermark
    (latest event time seen) passes its end plus the grace period."""

    grace: float = 60.0
    keep: int = 0  # closed minutes remembered for rolling totals ("N events in M minutes")
    watermark: float = 0.0
    open: dict[int, int] = field(default_factory=dict)
    last_closed: int | None = None  # start of the newest closed minute
    kept: dict[int, int] = field(default_factory=dict)

    def add(self, ts: float, n: int = 1) -> Added:
        minute = minute_of(ts)
        if self.last_closed is not None and minute <= self.last_closed:
            return Added(minute, 0, late=True)
        self.open[minute] = self.open.get(minute, 0) + n
        count = self.open[minute]
        closed: list[tuple[int, int]] = []
        if ts > self.watermark:
            self.watermark = ts
            closed = self._close_due()
        return Added(minute, count, late=False, closed=closed)

    def _close_due(self) -> list[tuple[int, int]]:
        """Close every minute that ended ``grace`` before the watermark; minutes without events close as 0."""
        horizon = self.watermark - self.grace
        if self.last_closed is not None:
            m = self.last_closed + 60
        elif self.open:
            m = min(self.open)
        else:
            return []
        closed: list[tuple[int, int]] = []
        skip_to = minute_of(horizon) - MAX_GAP_MINUTES * 60  # a longer silence is not replayed minute by minute
        if m < skip_to:
            closed.extend((k, self.open.pop(k)) for k in sorted(k for k in self.open if k < skip_to))
            m = skip_to
        while m + MINUTE <= horizon:
            closed.append((m, self.open.pop(m, 0)))
            m += 60
        if closed:
            self.last_closed = closed[-1][0]
        if self.keep and closed:
            for minute, count in closed:
                self.kept[minute] = count
            oldest = (self.last_closed or 0) - self.keep * 60
            self.kept = {k: c for k, c in self.kept.items() if k > oldest}
        return closed

    def recent_total(self, minutes: int, now_minute: int) -> int:
        """Events in the ``minutes`` open minutes ending at ``now_minute`` (inclusive)."""
        start = now_minute - (minutes - 1) * 60
        return sum(c for m, c in (*self.open.items(), *self.kept.items()) if start <= m <= now_minute)

    def to_dict(self) -> dict[str, Any]:
        return {"w": self.watermark, "o": {str(k): v for k, v in self.open.items()}, "c": self.last_closed,
                "k": {str(k): v for k, v in self.kept.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any], grace: float, keep: int = 0) -> MinuteWindows:
        return cls(grace=grace, keep=keep, watermark=d.get("w", 0.0),
                   open={int(k): v for k, v in d.get("o", {}).items()}, last_closed=d.get("c"),
                   kept={int(k): v for k, v in d.get("k", {}).items()})
