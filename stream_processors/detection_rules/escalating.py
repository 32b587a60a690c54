"""Escalating issues: an issue archived "until escalating" comes back when its volume beats its own forecast.

**The forecast** (``forecast``), computed once when the issue is archived, from its hourly true counts over
the last 168 clock hours, the current one included (``error_counts_1h``; hours without events count 0), after
Sentry's escalating-issues forecast: for each day of the week, the most events one hour of that day should see.

* An issue first seen less than 7 days ago has no week to learn from: its ceiling is ``young_factor`` (10)
  times its busiest hour so far, every day.
* Otherwise, with the hourly mean ``m``, standard deviation ``s`` and busiest hour ``peak`` of the week:

  - *bursty* ceiling: ``peak × clamp(5·e^(−0.65·s/m), 2, 5)``: an issue whose hours vary a lot (high
    coefficient of variation) already had big hours, so it takes fewer multiples of its peak to be news;
  - *steady* ceiling for weekday ``d``: the week's mean with the hours of weekday ``d`` weighted twice
    (the day-of-week seasonality), plus ``clamp((m + 5·s)/m, 5, 8) × m`` (five standard deviations above
    the mean, held between 5 and 8 times the mean);
  - the ceiling of weekday ``d`` is the larger of the two, and never below ``min_per_hour``.

Seven ceilings (Monday first, UTC) rather than Sentry's fourteen dated ones: Sentry's depend on the date only
through its weekday, so seven say the same and never run out. Sentry recomputes its forecasts daily; here the
forecast is the one computed at archive time (archive again to recompute it).

**The check** (``EscalationWatch``), in detection: while the issue is archived until escalating, each of its
events adds one to a two-bucket sliding hour (the current clock hour of event time and the one before it,
so the estimate of the last 60 minutes is ``current + previous × the part of the previous hour still in
those 60 minutes``: O(1) per event, no allocation). Once per bundle of events, not per event, the estimate
is compared with the ceiling of its weekday; above it, the issue escalates once: an ``escalating`` alert,
and a status change back to the stream (``escalating``), which detection publishes itself.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

HOUR = 3_600
DAY = 86_400
WEEK_HOURS = 168
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def weekday(ts: float) -> int:
    """Day of the week of epoch seconds ``ts`` (UTC), Monday = 0 (the epoch was a Thursday)."""
    return (int(ts // DAY) + 3) % 7


@dataclass(frozen=True, slots=True)
class EscalatingRule:
    std_multiplier: float = 5.0
    min_spike: float = 5.0
    max_spike: float = 8.0
    min_bursty: float = 2.0
    max_bursty: float = 5.0
    young_factor: float = 10.0
    min_per_hour: int = 10  # the ceiling never goes below this many events an hour


def forecast(hourly: Sequence[int], start_hour: int, first_hour: int | None,
             rule: EscalatingRule = EscalatingRule()) -> list[int]:
    """Seven hourly ceilings, Monday first, from ``hourly``: the counts of the 168 hours from ``start_hour``
    (hour index: epoch seconds // 3600) on. ``first_hour``: the hour of the issue's first event (None: no
    event at all), so a younger issue is told from a quiet one."""
    counts = [max(0, int(c)) for c in list(hourly)[:WEEK_HOURS]]
    counts += [0] * (WEEK_HOURS - len(counts))
    floor = rule.min_per_hour
    peak = max(counts)
    if first_hour is not None and first_hour > start_hour:  # younger than the week: its peak so far, ×10
        return [max(floor, math.ceil(peak * rule.young_factor))] * 7
    mean = statistics.fmean(counts)
    if mean <= 0:
        return [floor] * 7
    std = statistics.stdev(counts)
    cv = std / mean
    bursty = peak * min(max(rule.min_bursty, 5 * math.exp(-0.65 * cv)), rule.max_bursty)
    spike = min(max((mean + rule.std_multiplier * std) / mean, rule.min_spike), rule.max_spike) * mean
    out = []
    for day in range(7):
        weights = [2 if weekday((start_hour + i) * HOUR) == day else 1 for i in range(WEEK_HOURS)]
        weighted = sum(c * w for c, w in zip(counts, weights, strict=True)) / sum(weights)
        out.append(max(floor, math.ceil(max(bursty, weighted + spike))))
    return out


def ceiling_at(forecast_: Sequence[int], ts: float, rule: EscalatingRule) -> int:
    """The ceiling in force at event time ``ts``; a record without a forecast falls back to the minimum."""
    return int(forecast_[weekday(ts)]) if len(forecast_) == 7 else rule.min_per_hour


@dataclass(slots=True)
class EscalationWatch:
    """Events of an issue archived until escalating, in a sliding hour of event time.

    ``archived_at``: the ``changed_at`` of the archive it watches for (a new archive starts a new watch; an
    assignment or a note carried on the archived issue does not). ``escalated``: it escalated once already.
    """

    archived_at: str
    hour: int = -1  # clock hour (epoch s // 3600) of ``current``
    current: int = 0
    previous: int = 0  # events of the hour before ``hour``
    last: float = 0.0  # the newest event time counted
    escalated: bool = False

    def add(self, ts: float) -> None:
        h = int(ts // HOUR)
        if h == self.hour:
            self.current += 1
        elif h > self.hour:
            self.previous = self.current if h == self.hour + 1 else 0
            self.hour, self.current = h, 1
        elif h == self.hour - 1:
            self.previous += 1
        else:
            return  # older than the last hour: not in the window
        if ts > self.last:
            self.last = ts

    def last_hour(self) -> float:
        """Events in the 60 minutes to the newest event time counted (the sliding estimate)."""
        if self.hour < 0:
            return 0.0
        into = min(max((self.last - self.hour * HOUR) / HOUR, 0.0), 1.0)
        return self.current + self.previous * (1.0 - into)

    def to_list(self) -> list[Any]:
        return [self.archived_at, self.hour, self.current, self.previous, self.last, self.escalated]

    @classmethod
    def from_list(cls, v: Sequence[Any]) -> EscalationWatch:
        return cls(str(v[0]), int(v[1]), int(v[2]), int(v[3]), float(v[4]), bool(v[5]))


def until_escalating(status: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """The status is an archive "until escalating"."""
    return status is not None and status.get("status") == "ignored" and bool(status.get("ignore_until_escalating"))
