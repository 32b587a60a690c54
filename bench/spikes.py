"""Spike false positives on steady noisy traffic, and what the same rule catches.

Drives the real service detector (windows with grace, EWMA baseline, spike
rule, cooldowns) with simulated traffic on event time, so a day of traffic for
a hundred services runs in seconds. The traffic is deliberately not Poisson:
counts are gamma-Poisson (overdispersed: σ² = μ + μ²/k), follow a daily swing,
arrive in several chunks a minute and up to ``jitter`` seconds out of order
(inside the grace period, as a real consumer sees them).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace

from stream_processors.detection_rules.config import DetectionConfig
from stream_processors.detection_rules.services import ServiceDetector, ServiceState
from stream_processors.detection_signals import Signal

T0 = 1_795_435_200.0  # 2026-11-23T12:00:00Z


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


@dataclass
class Series:
    service: str
    rate: float  # mean events per minute
    phase: float


@dataclass
class SpikeBenchResult:
    series: int
    minutes: int
    events: int = 0
    false_alerts: int = 0  # spike alerts outside injected bursts, with the configured cooldown
    false_minutes: int = 0  # minutes that crossed the threshold outside bursts (cooldown off)
    false_by_rate: dict[str, int] = field(default_factory=dict)
    detected: dict[float, tuple[int, int]] = field(default_factory=dict)  # burst factor → (caught, injected)
    seconds: float = 0.0


def _series(rng: random.Random, n: int) -> list[Series]:
    # log-uniform from 0.2 to 2,000 events/min: sparse services and busy ones
    return [Series(f"svc{i:03d}", math.exp(rng.uniform(math.log(0.2), math.log(2_000))), rng.uniform(0, 2 * math.pi))
            for i in range(n)]


def _band(rate: float) -> str:
    return "<1/min" if rate < 1 else "1-10/min" if rate < 10 else "10-100/min" if rate < 100 else "≥100/min"


def _simulate(cfg: DetectionConfig, s: Series, minutes: int, rng: random.Random, dispersion: float, drift: float,
              jitter: float, bursts: dict[int, float]) -> tuple[int, set[int]]:
    """Events fed and the minutes (offsets) that raised an alert."""
    det = ServiceDetector(cfg)
    state: ServiceState | None = None
    chunks: list[tuple[float, float, int]] = []
    for m in range(minutes):
        mean = s.rate * (1 + drift * math.sin(2 * math.pi * m / 1_440 + s.phase))
        lam = rng.gammavariate(dispersion, mean / dispersion)  # gamma-Poisson: overdispersed counts
        count = poisson(rng, lam * bursts.get(m, 1.0))
        parts = min(count, 6)
        for j in range(parts):
            n = count // parts + (1 if j < count % parts else 0)
            ts = T0 + m * 60 + rng.uniform(0, 59.999)
            chunks.append((ts + rng.uniform(0, jitter), ts, n))  # (arrival, event time, events)
    chunks.sort()
    alerted: set[int] = set()
    events = 0
    for _, ts, n in chunks:
        events += n
        sig = Signal(event_id="00000000-0000-0000-0000-000000000000", service=s.service, fingerprint="0" * 32,
                     title="bench", level="error", ts=ts, received=ts)
        state, alerts = det.observe(state, sig, n)
        for a in alerts:
            assert a.trigger_event_time is not None
            alerted.add(int((a.trigger_event_time.timestamp() - T0) // 60))
    return events, alerted


def run_spike_bench(series: int = 100, minutes: int = 1_440, seed: int = 1, cfg: DetectionConfig | None = None,
                    dispersion: float = 10.0, drift: float = 0.3, jitter: float = 20.0,
                    burst_factors: tuple[float, ...] = (3.0, 5.0, 10.0)) -> SpikeBenchResult:
    cfg = cfg or DetectionConfig()
    rng = random.Random(seed)
    population = _series(rng, series)
    result = SpikeBenchResult(series=series, minutes=minutes)
    started = time.perf_counter()
    no_cooldown = replace(cfg, cooldown=0.0)
    for s in population:
        events, alerted = _simulate(cfg, s, minutes, random.Random(rng.random()), dispersion, drift, jitter, {})
        result.events += events
        result.false_alerts += len(alerted)
        _, crossed = _simulate(no_cooldown, s, minutes, random.Random(rng.random()), dispersion, drift, jitter, {})
        result.false_minutes += len(crossed)
        if crossed:
            result.false_by_rate[_band(s.rate)] = result.false_by_rate.get(_band(s.rate), 0) + len(crossed)
    for factor in burst_factors:
        caught = injected = 0
        for s in population:
            if s.rate < 10:
                continue  # a 3× burst of 2 errors a minute is not an incident; min_count decides those
            bursts = {m: factor for m in range(60, minutes, 120)}  # every 2 hours, after warm-up
            _, alerted = _simulate(no_cooldown, s, minutes, random.Random(rng.random()), dispersion, drift, jitter,
                                   bursts)
            injected += len(bursts)
            caught += len(alerted & set(bursts))
        result.detected[factor] = (caught, injected)
    result.seconds = time.perf_counter() - started
    return result


def figures(r: SpikeBenchResult) -> dict[str, object]:
    return {"events": r.events, "false_alerts": r.false_alerts, "false_minutes": r.false_minutes,
            "false_by_rate": r.false_by_rate, "seconds": round(r.seconds, 2),
            "detected": {f"{factor:g}x": {"caught": c, "injected": n} for factor, (c, n) in r.detected.items()}}


def report_lines(r: SpikeBenchResult, cfg: DetectionConfig) -> list[str]:
    rule = cfg.spike
    lines = [
        (f"rule              max({rule.min_count}, {rule.factor:g} × mean, mean + {rule.z:g}σ); EWMA α={rule.alpha:g} "
         f"(variance α={rule.var_alpha:g}), warm-up {rule.warmup} min, cooldown {cfg.cooldown:g} s, "
         f"grace {cfg.grace:g} s"),
        (f"steady traffic    {r.series} services × {r.minutes} simulated minutes, {r.events:,} events, "
         f"{r.seconds:.1f} s wall"),
        (f"false positives   {r.false_alerts} spike alerts ({r.false_minutes} minutes over threshold with cooldown off)"
         + (f"  by rate: {r.false_by_rate}" if r.false_by_rate else "")),
    ]
    for factor, (caught, injected) in r.detected.items():
        lines.append(f"{factor:g}× one-minute burst   caught {caught}/{injected} ({caught / max(injected, 1):.0%})"
                     " on services with ≥ 10 events/min")
    return lines
