"""Seasonal baseline and the two spike rules people mean: a *burst* and a *sustained rise*.

The expected count of a minute is ``level × shape(minute)``:

* ``shape`` is the key's usual rate (events/min) at this time of day and day of
  week: an hourly profile of 168 hour-of-week buckets, falling back to 24
  hour-of-day buckets where a weekday has not been seen yet, each an EWMA over
  weeks (days) of the hour's mean, interpolated linearly between hour centres so a
  morning ramp is a ramp and not a staircase. Until the 24 hour-of-day buckets
  are known (a day of history, or a bootstrap from ``error_counts_1h``) the shape
  is flat and the model is a plain EWMA.
* ``level`` is an EWMA of closed minutes divided by their shape: how far the key
  runs above or below its usual self right now (1.0 = as usual).
* ``recent`` is an unlagged EWMA of the last few closed minutes; where the profile ramps
  steeply (neighbouring hours differing by more than ``ramp``) a burst is judged against it
  when it is higher than the expectation, since the hourly profile places a ramp a little late.

Noise: σ² = e + rv·e², Poisson plus a learned relative over-dispersion ``rv``
(scale free, so a variance learned at night still holds in the morning).

A closed minute folds in clipped to ``e ± clip·σ``, so an incident teaches the
level and the profile little; minutes without events fold in as 0.

*Burst*: one minute's count ≥ max(min_count, factor × e, e + z·σ).
*Sustained rise*: the last ``rise_minutes`` minutes together ≥ max(rise_min_count,
rise_factor × Σe, Σe + rise_z·√Σσ²) with more than half of those minutes at
rise_factor × their own expectation (so one big minute is a burst, not a rise). Each has its own alert, dedup key and cooldown.
No alert before ``warmup`` closed minutes (a bootstrapped baseline is warm).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

HOUR = 3_600
WEEK_HOURS = 168
DAY_HOURS = 24
RECENT_ALPHA = 0.25  # weight of the newest minute in ``recent``: half-life ≈ 2.4 minutes
MONDAY = 96  # hours from the epoch (a Thursday, 00:00 UTC) to the first Monday 00:00 UTC


def hour_of_week(hour: int) -> int:
    """Bucket of the hour index ``hour`` (epoch seconds // 3600), Monday 00–01 UTC = 0."""
    return (hour - MONDAY) % WEEK_HOURS


@dataclass(frozen=True, slots=True)
class SpikeRule:
    # burst: one minute far above normal
    factor: float = 2.7
    z: float = 4.75
    min_count: int = 20
    ramp: float = 0.3  # where neighbouring hours of the profile differ by more (relative), a burst is also
    #                    judged against the recent level (a ramp the profile places late); 0 = everywhere
    # sustained rise: the last rise_minutes together
    rise_factor: float = 1.7
    rise_z: float = 5.0
    rise_minutes: int = 4
    rise_min_count: int = 40
    # baseline
    alpha: float = 0.05  # weight of the newest minute in the level while the shape is flat: half-life ≈ 13.5 min
    seasonal_alpha: float = 0.005  # ... once the profile is in use: half-life ≈ 2.3 h (the profile does the rest)
    var_alpha: float = 0.01  # ... in the relative over-dispersion rv: half-life ≈ 69 minutes
    profile_alpha: float = 0.3  # weight of the newest week (day) in an hour-of-week (hour-of-day) bucket
    rv_prior: float = 0.25  # rv before it is learned: σ ≈ e/2 on busy keys, so a cold key is cautious
    clip: float = 2.5  # a closed minute folds in within e ± clip·σ
    warmup: int = 5
    floor: float = 1.0  # events per minute the expectation never drops below
    seasonal: bool = True  # learn the time-of-day / day-of-week profile

    def variance(self, expected: float, rv: float) -> float:
        e = max(expected, self.floor)
        return e + rv * e * e

    def burst_threshold(self, expected: float, rv: float) -> float:
        e = max(expected, self.floor)
        return max(float(self.min_count), self.factor * e, e + self.z * math.sqrt(self.variance(e, rv)))

    def rise_threshold(self, expected: Iterable[float], rv: float) -> tuple[float, float]:
        """(threshold, expected total) for the sum of minutes expected at ``expected``."""
        es = [max(e, self.floor) for e in expected]
        total = sum(es)
        var = sum(self.variance(e, rv) for e in es)
        return max(float(self.rise_min_count), self.rise_factor * total, total + self.rise_z * math.sqrt(var)), total


def _blend(old: float, new: float, alpha: float) -> float:
    return new if old < 0 else old + alpha * (new - old)


@dataclass(slots=True)
class Baseline:
    level: float = 0.0  # EWMA of minute / shape (events/min while the shape is flat)
    rv: float = -1.0  # learned relative over-dispersion; < 0 until learned (the rule's prior then)
    n: int = 0  # closed minutes folded in (a bootstrap counts as warm)
    week: list[float] | None = None  # 168 hour-of-week mean rates, events/min (-1 = not seen)
    day: list[float] | None = None  # 24 hour-of-day mean rates
    shaped: bool = False  # the profile is in use (all 24 hour-of-day buckets known)
    hour: int = -1  # hour index (epoch s // 3600) being accumulated into the profile
    hour_sum: float = 0.0
    hour_n: int = 0
    recent: float = -1.0  # EWMA of the last few closed minutes (events/min), unlagged
    pending: list[tuple[int, int]] = field(default_factory=list)  # closed minutes not learned yet (oldest first)
    # thresholds already computed since the model last changed (not state: rebuilt on demand); a key's
    # open minutes are checked once per event batch, and the model only changes when a minute closes
    memo: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False, compare=False)

    # --- the model ---------------------------------------------------------------

    def dispersion(self, rule: SpikeRule) -> float:
        return rule.rv_prior if self.rv < 0 else self.rv

    def _bucket(self, hour: int) -> float:
        if self.week is not None and self.day is not None:
            v = self.week[hour_of_week(hour)]
            return v if v >= 0 else self.day[hour % DAY_HOURS]
        return -1.0

    def shape(self, minute: int, rule: SpikeRule) -> float:
        """Usual rate at ``minute`` (start, epoch s): the profile between hour centres; 1 while flat."""
        if not self.shaped:
            return 1.0
        pos = (minute + 30) / HOUR - 0.5  # hours since the epoch, 0 at the centre of hour 0
        h0 = math.floor(pos)
        frac = pos - h0
        a, b = self._bucket(h0), self._bucket(h0 + 1)
        v = a if b < 0 else b if a < 0 else a + frac * (b - a)
        return max(v, rule.floor)

    def expected(self, minute: int, rule: SpikeRule) -> float:
        return self.level * self.shape(minute, rule)

    def burst_expected(self, minute: int, rule: SpikeRule) -> float:
        """What a single minute is judged against: the seasonal expectation, or the last few minutes' level
        when that is higher and the profile is steep here (a ramp the profile places a little late). On a
        flat stretch the recent level is only noise around the expectation (σ ≈ 12 % of it on a busy key),
        and taking the higher of the two would raise every burst threshold by that noise."""
        e = self.expected(minute, rule)
        if self.recent <= e:
            return e
        return self.recent if self._steep(minute, rule) else e

    def _steep(self, minute: int, rule: SpikeRule) -> bool:
        """The profile's two hours around ``minute`` differ by more than ``rule.ramp`` (relative), or there is
        no profile to tell (flat, or a bucket not seen yet)."""
        if rule.ramp <= 0 or not self.shaped:
            return True
        h0 = math.floor((minute + 30) / HOUR - 0.5)
        a, b = self._bucket(h0), self._bucket(h0 + 1)
        if a < 0 or b < 0:
            return True
        hi = max(a, b, rule.floor)
        return (hi - max(min(a, b), rule.floor)) / hi > rule.ramp

    # --- learning ----------------------------------------------------------------

    def fold(self, minute: int, count: int, rule: SpikeRule) -> None:
        """Fold the closed ``minute`` (start, epoch s) with ``count`` events. Minutes are learned from
        ``rise_minutes`` closed minutes late, so a rise window is never judged against a level that has
        already learned part of it."""
        eb = self.burst_expected(minute, rule)
        if self.recent < 0 or self.n < rule.warmup:
            x = float(count) if self.recent < 0 else self.recent + RECENT_ALPHA * (count - self.recent)
        else:
            cap = eb + rule.clip * math.sqrt(rule.variance(eb, self.dispersion(rule)))
            x = self.recent + RECENT_ALPHA * (min(float(count), cap) - self.recent)
        self.recent = x
        self.pending.append((minute, count))
        while len(self.pending) > rule.rise_minutes:
            self._learn(*self.pending.pop(0), rule)

    def _learn(self, minute: int, count: int, rule: SpikeRule) -> None:
        self.memo.clear()
        x = float(count)
        s = self.shape(minute, rule)
        if self.n >= rule.warmup:
            e = self.level * s
            rv = self.dispersion(rule)
            if e >= 5 and x < rule.burst_threshold(e, rv):  # learn the over-dispersion from ordinary minutes
                r = min(((x - e) ** 2 - e) / (e * e), 4.0)
                self.rv = max(0.0, rv + rule.var_alpha * (r - rv))
            sigma = math.sqrt(rule.variance(e, rv))
            x = min(max(x, e - rule.clip * sigma), e + rule.clip * sigma)
        if self.n == 0:
            self.level = x / s
        else:
            alpha = rule.seasonal_alpha if self.shaped else max(rule.alpha, 1.0 / (self.n + 1))  # a plain mean at first
            self.level += alpha * (x / s - self.level)
        self.n += 1
        if rule.seasonal:
            self._profile(minute, x, rule)

    def _profile(self, minute: int, x: float, rule: SpikeRule) -> None:
        hour = minute // HOUR
        if hour != self.hour:
            if self.hour >= 0 and self.hour_n >= 30:  # an hour seen for at least half of it
                self.fold_hour(self.hour, self.hour_sum / self.hour_n, rule)
            self.hour, self.hour_sum, self.hour_n = hour, 0.0, 0
        self.hour_sum += x
        self.hour_n += 1

    def fold_hour(self, hour: int, rate: float, rule: SpikeRule, *, at: int | None = None) -> None:
        """Fold one hour's mean rate (events/min) into its hour-of-week and hour-of-day buckets."""
        self.memo.clear()
        if self.week is None or self.day is None:
            self.week, self.day = [-1.0] * WEEK_HOURS, [-1.0] * DAY_HOURS
        b = hour_of_week(hour)
        self.week[b] = round(_blend(self.week[b], rate, rule.profile_alpha), 4)
        d = hour % DAY_HOURS
        self.day[d] = round(_blend(self.day[d], rate, rule.profile_alpha), 4)
        if not self.shaped and min(self.day) >= 0:
            now = (hour + 1) * HOUR if at is None else at
            flat = self.level
            self.shaped = True
            self.level = flat / self.shape(now, rule)  # same expectation now, in units of the shape

    def bootstrap(self, hourly: dict[int, int], since_hour: int, until_hour: int, rule: SpikeRule) -> None:
        """Learn the profile from hourly counts (hour index → events; missing hours had none), for
        ``since_hour`` ≤ hour < ``until_hour``, from the key's first hour with events. Only a new baseline
        with at least a day of history is bootstrapped (it is then warm); any other is left alone."""
        if not rule.seasonal or self.week is not None or self.n > 0:
            return
        first = min((h for h in hourly if since_hour <= h < until_hour), default=until_hour)
        if until_hour - first < DAY_HOURS:
            return  # less than a day since the key's first events: it learns live
        for hour in range(first, until_hour):
            self.fold_hour(hour, hourly.get(hour, 0) / 60.0, rule, at=until_hour * HOUR)
        self.level, self.n = 1.0, rule.warmup

    # --- state ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"m": self.level, "r": self.rv, "n": self.n, "p": self.pending, "f": self.recent}
        if self.week is not None and self.day is not None:
            d.update(w=self.week, d=self.day, s=self.shaped, h=self.hour, hs=self.hour_sum, hn=self.hour_n)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Baseline:
        b = cls(level=d.get("m", 0.0), rv=d.get("r", -1.0), n=d.get("n", 0), shaped=bool(d.get("s", False)),
                hour=d.get("h", -1), hour_sum=d.get("hs", 0.0), hour_n=d.get("hn", 0),
                pending=[(int(m), int(c)) for m, c in d.get("p", [])], recent=d.get("f", -1.0))
        week, day = d.get("w"), d.get("d")
        if isinstance(week, list) and len(week) == WEEK_HOURS and isinstance(day, list) and len(day) == DAY_HOURS:
            b.week, b.day = [float(v) for v in week], [float(v) for v in day]
        else:
            b.shaped = False
        return b


@dataclass(frozen=True, slots=True)
class SpikeHit:
    """A burst: one minute far above its expected count."""

    minute: int
    count: int
    baseline: float  # expected count of the minute
    threshold: float

    @property
    def ratio(self) -> float:
        return self.count / max(self.baseline, 1.0)


@dataclass(frozen=True, slots=True)
class RiseHit:
    """A sustained rise: ``minutes`` minutes ending with ``minute`` far above their expected total."""

    minute: int  # the newest minute of the window
    since: int  # first minute of the window at rise_factor × its expected count or more
    minutes: int
    count: int
    expected: float
    threshold: float

    @property
    def ratio(self) -> float:
        return self.count / max(self.expected, 1.0)


def check_spike(rule: SpikeRule, baseline: Baseline, minute: int, count: int, fired: set[int]) -> SpikeHit | None:
    """A burst hit the first time ``minute``'s count reaches the threshold (``fired`` remembers alerted minutes)."""
    if baseline.n < rule.warmup or minute in fired:
        return None
    memo = baseline.memo.get(("b", minute))
    if memo is None or memo[0] != baseline.recent:
        expected = baseline.burst_expected(minute, rule)
        memo = baseline.memo[("b", minute)] = (baseline.recent, expected,
                                                rule.burst_threshold(expected, baseline.dispersion(rule)))
    _, expected, threshold = memo
    if count < threshold:
        return None
    fired.add(minute)
    return SpikeHit(minute=minute, count=count, baseline=expected, threshold=threshold)


def check_rise(rule: SpikeRule, baseline: Baseline, minute: int, counts: dict[int, int],
               fired: set[int], more: dict[int, int] | None = None) -> RiseHit | None:
    """A rise hit when the ``rule.rise_minutes`` minutes ending with ``minute`` (counts by minute start in
    ``counts`` plus ``more``; absent minutes count 0) together reach the rise threshold and more than half of them are each ``rise_factor`` ×
    their expected count; once per window end."""
    if rule.rise_minutes <= 0 or baseline.n < rule.warmup or minute in fired:
        return None
    window = [minute - 60 * i for i in range(rule.rise_minutes - 1, -1, -1)]
    seen = [counts.get(m, 0) + (more.get(m, 0) if more else 0) for m in window]
    total = sum(seen)
    if total < rule.rise_min_count:
        return None
    memo = baseline.memo.get(("r", minute))
    if memo is None:
        expected = [baseline.expected(m, rule) for m in window]
        memo = baseline.memo[("r", minute)] = (expected, *rule.rise_threshold(expected, baseline.dispersion(rule)))
    expected, threshold, expected_total = memo
    if total < threshold:
        return None
    high = [m for m, c, e in zip(window, seen, expected, strict=True) if c >= rule.rise_factor * max(e, rule.floor)]
    if 2 * len(high) <= rule.rise_minutes:
        return None  # a big minute or two are bursts, not a rise
    fired.add(minute)
    since = high[0]
    return RiseHit(minute=minute, since=since, minutes=rule.rise_minutes, count=total, expected=expected_total,
                   threshold=threshold)
