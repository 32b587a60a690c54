"""Spike rule: a minute's count against an EWMA baseline of the key's past minutes.

The threshold is the largest of three guards, each covering a failure mode of
the others on steady noisy traffic:

* ``factor × mean`` — a relative jump ("3× the usual"), what people mean by a spike;
* ``mean + z·σ`` with σ = max(EWMA standard deviation, √mean) — keeps bursty but
  normal series quiet (σ learned from the data) and uses the Poisson floor when
  the learned variance is still too small to trust;
* ``min_count`` — a handful of errors is never a spike, whatever the baseline.

Minutes are folded into the baseline when they close (after grace); minutes
without events fold in as 0 so a quiet service decays towards the floor. A
spiking minute folds in capped at the threshold, so one burst does not teach
the baseline that bursts are normal. No alert before ``warmup`` closed minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SpikeRule:
    factor: float = 3.0
    z: float = 8.0
    min_count: int = 20
    alpha: float = 0.1  # weight of the newest minute in the mean: half-life ≈ 6.6 minutes
    var_alpha: float = 0.02  # ... in the variance: half-life ≈ 34 minutes, so one quiet stretch does not shrink σ
    warmup: int = 5
    floor: float = 1.0  # events per minute

    def threshold(self, baseline: Baseline) -> float:
        mean = max(baseline.mean, self.floor)
        sigma = math.sqrt(max(baseline.var, mean))
        return max(float(self.min_count), self.factor * mean, mean + self.z * sigma)


@dataclass(slots=True)
class Baseline:
    mean: float = 0.0
    var: float = 0.0
    n: int = 0  # closed minutes folded in

    def fold(self, count: int, rule: SpikeRule) -> None:
        x = float(count)
        if self.n >= rule.warmup:
            x = min(x, rule.threshold(self))
        if self.n == 0:
            self.mean, self.var = x, 0.0
        else:
            diff = x - self.mean
            self.mean += rule.alpha * diff
            self.var = (1 - rule.var_alpha) * (self.var + rule.var_alpha * diff * diff)
        self.n += 1

    def to_dict(self) -> dict[str, Any]:
        return {"m": self.mean, "v": self.var, "n": self.n}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Baseline:
        return cls(mean=d.get("m", 0.0), var=d.get("v", 0.0), n=d.get("n", 0))


@dataclass(frozen=True, slots=True)
class SpikeHit:
    minute: int
    count: int
    baseline: float
    threshold: float

    @property
    def ratio(self) -> float:
        return self.count / max(self.baseline, 1.0)


def check_spike(rule: SpikeRule, baseline: Baseline, minute: int, count: int, fired: set[int]) -> SpikeHit | None:
    """A hit the first time ``minute``'s count reaches the threshold (``fired`` remembers alerted minutes)."""
    if baseline.n < rule.warmup or minute in fired:
        return None
    threshold = rule.threshold(baseline)
    if count < threshold:
        return None
    fired.add(minute)
    return SpikeHit(minute=minute, count=count, baseline=baseline.mean, threshold=threshold)
