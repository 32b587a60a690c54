"""Spike detection on realistic simulated traffic: false alerts per service-week and incidents caught.

Drives the real service detector (windows with grace, seasonal baseline, burst
and sustained-rise rules, cooldowns) with simulated traffic on event time, so a
week of traffic for dozens of services runs in seconds. The traffic:

* a daily cycle in each service's own time zone: night at a fifth of the day
  rate, a morning ramp within one hour (07:00–08:00), an evening decline
  (18:00–23:00); weekends at half the weekday day-time traffic, the same nights;
* over-dispersed counts: gamma-Poisson, σ² = μ + μ²/k (``dispersion`` = k);
* deploy-time blips: two a weekday at office hours, +50 % for two minutes;
* counts arrive in two chunks a minute, up to ``jitter`` seconds out of order
  (inside the grace period, as a real consumer sees them);
* injected incidents, one every three hours per service at a random minute:
  a sustained 3× rise for 10 minutes, and 3×, 5× and 10× bursts of 1–3 minutes.

The detector starts as a worker does after a cold start with ClickHouse up: its
hourly profile is bootstrapped from the previous week's hourly counts (simulated
the same way); ``cold=True`` starts it with nothing.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

from stream_processors.detection_rules.config import DetectionConfig
from stream_processors.detection_rules.services import ServiceDetector, ServiceState
from stream_processors.detection_signals import Signal

T0 = 1_795_392_000.0  # 2026-11-23T00:00:00Z, a Monday
WEEK_MINUTES = 10_080
SLOT = 180  # minutes between incidents of one service
INCIDENTS: tuple[tuple[str, float], ...] = (("rise", 3.0), ("burst", 3.0), ("burst", 5.0), ("burst", 10.0))
DETECT_WITHIN = 5  # minutes: a sustained rise counts as caught when alerted this soon after it starts
TIME_ZONES = (-8.0, -5.0, 0.0, 1.0, 5.5, 8.0, 9.0)


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


def daily(hour: float) -> float:
    """Share of the day rate at a local hour (0–24)."""
    if hour < 7:
        return 0.2
    if hour < 8:
        return 0.2 + 0.8 * (hour - 7)
    if hour < 18:
        return 1.0
    if hour < 23:
        return 1.0 - 0.8 * (hour - 18) / 5
    return 0.2


@dataclass
class Series:
    service: str
    rate: float  # weekday day-time mean, events per minute
    tz: float  # hours from UTC

    def mean(self, minute: int) -> float:
        """Mean events per minute at ``minute`` of the week (minute 0 = Monday 00:00 UTC)."""
        local = (minute / 60 + self.tz) % 168
        day = daily(local % 24)
        if local >= 120:  # weekends: half the day-time traffic, the same nights
            day = 0.2 + (day - 0.2) * 0.5
        return self.rate * day


@dataclass(frozen=True)
class Incident:
    start: int  # minute of the week
    minutes: int
    kind: str  # rise | burst
    factor: float
    expected: float  # mean events per minute at the start, without the incident


@dataclass
class SpikeBenchResult:
    series: int
    minutes: int
    cold: bool = False
    events: int = 0
    false_alerts: int = 0  # alerts outside incidents (either kind)
    false_by_kind: dict[str, int] = field(default_factory=dict)
    false_by_rate: dict[str, int] = field(default_factory=dict)
    # (kind, factor, band) → (caught, injected); bursts by one-minute and all durations
    caught: dict[str, list[int]] = field(default_factory=dict)
    delays: list[int] = field(default_factory=list)  # minutes from rise start to its alert
    seconds: float = 0.0


def _series(rng: random.Random, n: int) -> list[Series]:
    # log-uniform from 0.2 to 2,000 events/min at weekday day-time: sparse services and busy ones
    return [Series(f"svc{i:03d}", math.exp(rng.uniform(math.log(0.2), math.log(2_000))), rng.choice(TIME_ZONES))
            for i in range(n)]


def band(rate: float) -> str:
    return "<10/min" if rate < 10 else "10-100/min" if rate < 100 else "≥100/min"


def _incidents(s: Series, minutes: int, rng: random.Random) -> list[Incident]:
    out = []
    for i, start_slot in enumerate(range(0, minutes - SLOT + 1, SLOT)):
        kind, factor = INCIDENTS[(i + rng.randrange(len(INCIDENTS))) % len(INCIDENTS)]
        length = 10 if kind == "rise" else rng.randint(1, 3)
        start = start_slot + rng.randrange(30, SLOT - 30)
        out.append(Incident(start, length, kind, factor, s.mean(start)))
    return out


def _blips(s: Series, minutes: int, rng: random.Random) -> dict[int, float]:
    out: dict[int, float] = {}
    for day in range(0, minutes // 1_440 + 1):
        if day % 7 >= 5:
            continue
        for _ in range(2):
            local = rng.uniform(9, 17)
            start = day * 1_440 + int((local - s.tz) * 60)
            for m in (start, start + 1):
                out[m] = 1.5
    return out


def _counts(s: Series, minutes: int, rng: random.Random, dispersion: float, factors: dict[int, float]) -> list[int]:
    out = []
    for m in range(minutes):
        mean = s.mean(m)
        lam = rng.gammavariate(dispersion, mean / dispersion)  # gamma-Poisson: over-dispersed counts
        out.append(poisson(rng, lam * factors.get(m, 1.0)))
    return out


def _simulate(det: ServiceDetector, s: Series, counts: list[int], state: ServiceState | None, rng: random.Random,
              jitter: float) -> list[tuple[int, str]]:
    """Drive the detector; the minute (of the week) and pattern of each alert."""
    chunks: list[tuple[float, float, int]] = []
    for m, count in enumerate(counts):
        first = count // 2
        for n in (first, count - first):
            if n:
                ts = T0 + m * 60 + rng.uniform(0, 59.999)
                chunks.append((ts + rng.uniform(0, jitter), ts, n))  # (arrival, event time, events)
    chunks.sort()
    alerted: list[tuple[int, str]] = []
    for _, ts, n in chunks:
        sig = Signal(event_id="00000000-0000-0000-0000-000000000000", service=s.service, fingerprint="0" * 32,
                     title="bench", level="error", ts=ts, received=ts)
        state, alerts = det.observe(state, sig, n)
        for a in alerts:
            assert a.trigger_event_time is not None
            alerted.append((int((a.trigger_event_time.timestamp() - T0) // 60), str(a.details.get("pattern"))))
    return alerted


def _tally(result: SpikeBenchResult, key: str, caught: bool) -> None:
    row = result.caught.setdefault(key, [0, 0])
    row[0] += int(caught)
    row[1] += 1


def run_spike_bench(series: int = 50, minutes: int = WEEK_MINUTES, seed: int = 1, cfg: DetectionConfig | None = None,
                    dispersion: float = 10.0, jitter: float = 20.0, cold: bool = False) -> SpikeBenchResult:
    cfg = cfg or DetectionConfig()
    det = ServiceDetector(cfg)
    rng = random.Random(seed)
    population = _series(rng, series)
    result = SpikeBenchResult(series=series, minutes=minutes, cold=cold)
    started = time.perf_counter()
    margin = cfg.spike.rise_minutes + 2
    for s in population:
        srng = random.Random(rng.random())
        incidents = _incidents(s, minutes, srng)
        factors = _blips(s, minutes, srng)
        for inc in incidents:
            for m in range(inc.start, inc.start + inc.minutes):
                factors[m] = inc.factor
        state = None
        if not cold:  # the previous week's hourly counts, as error_counts_1h holds them
            history = _counts(s, WEEK_MINUTES, srng, dispersion, {})
            hour0 = int(T0 // 3_600) - WEEK_MINUTES // 60
            hourly = {hour0 + h: sum(history[h * 60:(h + 1) * 60]) for h in range(WEEK_MINUTES // 60)}
            state = det.bootstrapped(None, hourly, hour0, hour0 + WEEK_MINUTES // 60)
        counts = _counts(s, minutes, srng, dispersion, factors)
        result.events += sum(counts)
        alerted = _simulate(det, s, counts, state, srng, jitter)
        covered: set[int] = set()
        for inc in incidents:
            covered.update(range(inc.start, inc.start + inc.minutes + margin))
            b = band(inc.expected)
            if inc.kind == "rise":
                hits = [m - inc.start for m, p in alerted
                        if p == "sustained" and inc.start <= m < inc.start + inc.minutes]
                ok = bool(hits) and min(hits) < DETECT_WITHIN
                if hits:
                    result.delays.append(min(hits))
                _tally(result, f"rise {inc.factor:g}x|{b}", ok)
            else:
                ok = any(inc.start <= m < inc.start + inc.minutes for m, _ in alerted)
                _tally(result, f"burst {inc.factor:g}x {'1 min' if inc.minutes == 1 else '1-3 min'}|{b}", ok)
                if inc.minutes == 1:
                    _tally(result, f"burst {inc.factor:g}x 1-3 min|{b}", ok)
        for m, pattern in alerted:
            if m not in covered:
                result.false_alerts += 1
                result.false_by_kind[pattern] = result.false_by_kind.get(pattern, 0) + 1
                result.false_by_rate[band(s.rate)] = result.false_by_rate.get(band(s.rate), 0) + 1
    result.seconds = time.perf_counter() - started
    return result


def rates(r: SpikeBenchResult, prefix: str, *, min_rate: bool = False) -> tuple[int, int]:
    """(caught, injected) over the rows starting with ``prefix``; ``min_rate``: services at ≥ 10 events/min only."""
    c = n = 0
    for key, (caught, injected) in r.caught.items():
        what, b = key.split("|")
        if what == prefix and (not min_rate or b != "<10/min"):
            c, n = c + caught, n + injected
    return c, n


def figures(r: SpikeBenchResult) -> dict[str, object]:
    weeks = r.series * r.minutes / WEEK_MINUTES
    return {"events": r.events, "false_alerts": r.false_alerts, "false_per_service_week": round(r.false_alerts
                                                                                                  / max(weeks, 1e-9), 3),
            "false_by_kind": r.false_by_kind, "false_by_rate": r.false_by_rate, "seconds": round(r.seconds, 2),
            "cold": r.cold, "caught": {k: {"caught": c, "injected": n} for k, (c, n) in sorted(r.caught.items())},
            "rise_delay_minutes_max": max(r.delays, default=None)}


def _pct(c: int, n: int) -> str:
    return f"{c}/{n} ({c / n:.0%})" if n else "none injected"


def report_lines(r: SpikeBenchResult, cfg: DetectionConfig) -> list[str]:
    rule = cfg.spike
    weeks = r.series * r.minutes / WEEK_MINUTES
    lines = [
        (f"burst rule        max({rule.min_count}, {rule.factor:g} × expected, expected + {rule.z:g}σ) in one minute; "
         f"cooldown {cfg.cooldown:g} s"),
        (f"rise rule         {rule.rise_minutes} minutes together ≥ max({rule.rise_min_count}, {rule.rise_factor:g} × "
         f"expected, expected + {rule.rise_z:g}σ); cooldown {cfg.rise_cooldown:g} s"),
        (f"baseline          {'seasonal' if rule.seasonal else 'flat'}, level α={rule.seasonal_alpha:g} "
         f"({rule.alpha:g} while flat), over-dispersion α={rule.var_alpha:g}, "
         f"{'cold start' if r.cold else 'bootstrapped from a week of hourly counts'}"),
        (f"traffic           {r.series} services × {r.minutes:,} simulated minutes ({weeks:.1f} service-weeks), "
         f"{r.events:,} events, {r.seconds:.1f} s wall"),
        (f"false positives   {r.false_alerts} alerts outside incidents ({r.false_alerts / max(weeks, 1e-9):.2f} per "
         f"service-week)" + (f"  by kind: {r.false_by_kind}  by day rate: {r.false_by_rate}" if r.false_alerts else "")),
    ]
    c, n = rates(r, "rise 3x", min_rate=True)
    ca, na = rates(r, "rise 3x")
    lines.append(f"sustained 3× 10 min   caught within {DETECT_WITHIN} min: {_pct(c, n)} at ≥ 10 events/min, "
                 f"{_pct(ca, na)} all services (slowest {max(r.delays, default=0)} min)")
    for factor in (3, 5, 10):
        for length in ("1 min", "1-3 min"):
            c, n = rates(r, f"burst {factor}x {length}", min_rate=True)
            ca, na = rates(r, f"burst {factor}x {length}")
            label = "one-minute burst" if length == "1 min" else "1-3 min burst   "
            lines.append(f"{factor}× {label}    caught {_pct(c, n)} at ≥ 10 events/min, {_pct(ca, na)} all services")
    small = [(k.split("|")[0], v) for k, v in sorted(r.caught.items()) if k.endswith("|<10/min")]
    if small:
        lines.append("below 10 events/min: " + ", ".join(f"{k} {_pct(c, n)}" for k, (c, n) in small))
    return lines
