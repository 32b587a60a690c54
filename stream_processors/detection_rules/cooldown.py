"""Per-dedup-key cooldown, on event time.

Event time rather than wall time: a replay or a backfill of an hour of old
events behaves like the hour did (no burst of alerts because the wall clock
says the cooldown expired), and tests drive it with timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Cooldowns:
    last: dict[str, float] = field(default_factory=dict)  # dedup key → event time of the last alert

    def allow(self, key: str, at: float, period: float) -> bool:
        """True (and remember ``at``) unless ``key`` alerted less than ``period`` seconds before ``at``."""
        prev = self.last.get(key)
        if prev is not None and at - prev < period:
            return False
        self.last[key] = at
        if len(self.last) > 64:
            self.prune(at, period)
        return True

    def prune(self, at: float, period: float) -> None:
        self.last = {k: t for k, t in self.last.items() if at - t < period}
