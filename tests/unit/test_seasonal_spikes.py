"""The seasonal baseline and its two rules (burst, sustained rise), without Kafka."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import orjson
import pytest

from stream_processors.detection_rules.config import DetectionConfig
from stream_processors.detection_rules.services import ServiceDetector, ServiceState
from stream_processors.detection_rules.spikes import (
    Baseline,
    SpikeRule,
    check_rise,
    check_spike,
    hour_of_week,
)
from stream_processors.detection_signals import Signal

MONDAY = int(datetime(2026, 11, 23, tzinfo=UTC).timestamp())  # 00:00 UTC


def sig(ts: float, service: str = "billing") -> Signal:
    return Signal(event_id="00000000-0000-0000-0000-000000000000", service=service, fingerprint="0" * 32,
                  title="KeyError: 'x'", level="error", ts=ts, received=ts)


def day_rate(minute: int, rate: float) -> float:
    """Night at a fifth of the day, a morning ramp 07:00–08:00 UTC, an evening decline 18:00–23:00."""
    h = (minute % 86_400) / 3_600
    share = 0.2 if h < 7 or h >= 23 else 0.2 + 0.8 * (h - 7) if h < 8 else 1.0 if h < 18 else 1.0 - 0.8 * (h - 18) / 5
    return rate * share


def poisson(rng: random.Random, lam: float) -> int:
    return max(0, round(rng.gauss(lam, math.sqrt(lam)))) if lam > 30 else \
        sum(1 for _ in range(int(lam * 10)) if rng.random() < 0.1)


def run(det: ServiceDetector, state: ServiceState | None, counts: dict[int, int]) -> tuple[ServiceState, list]:
    """Feed per-minute counts (minute start → events) in two chunks a minute; the alerts raised."""
    out = []
    for minute in sorted(counts):
        n = counts[minute]
        for ts, k in ((minute + 10.0, n // 2), (minute + 40.0, n - n // 2)):
            if k:
                state, alerts = det.observe(state, sig(ts), k)
                out += alerts
    assert state is not None
    return state, out


def test_hour_of_week_starts_on_monday_utc() -> None:
    assert hour_of_week(MONDAY // 3_600) == 0
    assert hour_of_week(MONDAY // 3_600 + 167) == 167 and hour_of_week(MONDAY // 3_600 + 168) == 0


def test_burst_threshold_takes_the_largest_guard() -> None:
    rule = SpikeRule(factor=3, z=5, min_count=20)
    assert rule.burst_threshold(100, 0.0) == pytest.approx(300)  # factor dominates
    assert rule.burst_threshold(2, 0.1) == 20  # min_count dominates
    assert rule.burst_threshold(100, 1.0) > 500  # a learned over-dispersion dominates a noisy key


def test_no_burst_during_warmup_and_one_hit_per_minute() -> None:
    rule = SpikeRule(warmup=5, rise_minutes=0)  # no learning lag
    b = Baseline()
    for i in range(4):
        b.fold(MONDAY + i * 60, 10, rule)
    fired: set[int] = set()
    assert check_spike(rule, b, MONDAY + 300, 500, fired) is None  # 4 minutes of history are not enough
    b.fold(MONDAY + 240, 10, rule)
    hit = check_spike(rule, b, MONDAY + 300, 500, fired)
    assert hit is not None and hit.ratio == pytest.approx(50)
    assert check_spike(rule, b, MONDAY + 300, 501, fired) is None


def test_an_incident_teaches_the_level_little() -> None:
    rule = SpikeRule()
    b = Baseline()
    for i in range(30):
        b.fold(MONDAY + i * 60, 100, rule)
    for i in range(30, 40):
        b.fold(MONDAY + i * 60, 2_000, rule)
    for i in range(40, 40 + rule.rise_minutes):  # learned rise_minutes late
        b.fold(MONDAY + i * 60, 100, rule)
    assert b.expected(MONDAY + 3_000, rule) < 200  # ten minutes at 20× move the expectation less than 2×


def test_steady_noisy_traffic_raises_nothing() -> None:
    rng = random.Random(7)
    det = ServiceDetector(DetectionConfig())
    for rate in (0.5, 5, 50, 500):
        counts = {MONDAY + m * 60: poisson(rng, rng.gammavariate(20, rate / 20)) for m in range(600)}
        _, alerts = run(det, None, counts)
        assert alerts == [], (rate, [a.title for a in alerts])


def test_the_profile_learns_the_day_and_the_morning_ramp_is_not_a_spike() -> None:
    rng = random.Random(3)
    det = ServiceDetector(DetectionConfig())
    day = 86_400
    first, _ = run(det, None, {m: poisson(rng, day_rate(m, 300)) for m in range(MONDAY, MONDAY + day, 60)})
    # a cold start with no history (no bootstrap) learns the day in one day; from then on, ramps are expected
    state, alerts = run(det, first, {m: poisson(rng, day_rate(m, 300)) for m in range(MONDAY + day,
                                                                                      MONDAY + 3 * day, 60)})
    assert alerts == [], [(a.title, a.details.get("window_start")) for a in alerts]
    b = state.baseline
    assert b.shaped and b.week is not None
    night, ramp, noon = (MONDAY + 3 * day + int(h * 3_600) for h in (3, 7.75, 12))
    rule = det.cfg.spike
    assert b.expected(night, rule) == pytest.approx(60, rel=0.25)
    assert b.expected(ramp, rule) == pytest.approx(day_rate(ramp, 300), rel=0.25)
    assert b.expected(noon, rule) == pytest.approx(300, rel=0.25)
    flat = ServiceDetector(DetectionConfig(spike=SpikeRule(seasonal=False)))  # what the profile is for
    _, flat_alerts = run(flat, None, {m: poisson(rng, day_rate(m, 300)) for m in range(MONDAY, MONDAY + 3 * day, 60)})
    assert [a.details["pattern"] for a in flat_alerts].count("sustained") >= 1


def test_a_bootstrapped_profile_is_warm_and_knows_the_time_of_day() -> None:
    rule = SpikeRule()
    start = MONDAY // 3_600 - 168  # the week before
    hourly = {h: round(60 * day_rate(h * 3_600 + 1_800, 300)) for h in range(start, start + 168)}
    del hourly[start + 100]  # hours without a row had no events
    b = Baseline()
    b.bootstrap(hourly, start, start + 168, rule)
    assert b.shaped and b.n >= rule.warmup
    assert b.expected(MONDAY + 3 * 3_600, rule) == pytest.approx(60, rel=0.1)
    assert b.expected(MONDAY + 12 * 3_600, rule) == pytest.approx(300, rel=0.1)
    assert b.expected(MONDAY + 100 * 3_600 + 1_770, rule) <= rule.floor * 1.01  # that hour, a week on
    before = b.to_dict()
    b.bootstrap({h: 1 for h in hourly}, start, start + 168, rule)  # a baseline with a profile keeps it
    assert b.to_dict() == before


def test_a_burst_is_judged_against_the_recent_level_only_where_the_profile_ramps() -> None:
    rule = SpikeRule()
    start = MONDAY // 3_600 - 168
    hourly = {h: round(60 * day_rate(h * 3_600 + 1_800, 300)) for h in range(start, start + 168)}
    b = Baseline()
    b.bootstrap(hourly, start, start + 168, rule)
    noon, ramp = MONDAY + 12 * 3_600, MONDAY + 7 * 3_600 + 50 * 60  # a flat hour; the morning ramp (07:00–08:00)
    b.recent = 1.2 * b.expected(noon, rule)  # the last minutes ran 20 % above the profile
    assert b.burst_expected(noon, rule) == b.expected(noon, rule)  # on a flat stretch that is noise
    b.recent = 1.5 * b.expected(ramp, rule)
    assert b.burst_expected(ramp, rule) == b.recent  # on the ramp the profile lags: the recent level counts
    everywhere = SpikeRule(ramp=0)  # the rule before: the higher of the two everywhere
    b.recent = 1.2 * b.expected(noon, everywhere)
    assert b.burst_expected(noon, everywhere) == b.recent
    b.recent = 0.5 * b.expected(noon, rule)
    assert b.burst_expected(noon, rule) == b.expected(noon, rule)  # never below the expectation


def test_a_sustained_rise_alerts_once_with_expected_seen_and_since() -> None:
    rng = random.Random(5)
    det = ServiceDetector(DetectionConfig())
    counts = {MONDAY + m * 60: poisson(rng, 50) for m in range(60)}
    rise_at = MONDAY + 60 * 60
    counts |= {rise_at + m * 60: poisson(rng, 150) for m in range(10)}
    counts |= {rise_at + (10 + m) * 60: poisson(rng, 50) for m in range(20)}
    _, alerts = run(det, None, counts)
    rises = [a for a in alerts if a.details["pattern"] == "sustained"]
    assert len(rises) == 1, [a.title for a in alerts]
    rise = rises[0]
    assert rise.kind == "spike" and rise.dedup_key == "rise:service:billing"
    assert rise.trigger_event_time is not None and rise.trigger_event_time.timestamp() < rise_at + 5 * 60
    assert rise.details["since"] == datetime.fromtimestamp(rise_at, UTC).isoformat()
    assert rise.details["expected"] == pytest.approx(200, rel=0.2) and rise.details["ratio"] >= 2
    assert "expected" in rise.title and "since 2026-11-23 01:00:00 UTC" in rise.message


def test_burst_and_rise_have_their_own_keys_and_cooldowns() -> None:
    rng = random.Random(9)
    det = ServiceDetector(DetectionConfig(cooldown=1_800, rise_cooldown=600))
    counts = {MONDAY + m * 60: poisson(rng, 50) for m in range(60)}
    counts[MONDAY + 60 * 60] = 1_000  # a one-minute burst: a burst, not a rise
    for start in (70, 85):  # two 6-minute rises 15 minutes apart: the rise cooldown (10 min) lets both through
        counts |= {MONDAY + (start + m) * 60: poisson(rng, 200) for m in range(6)}
        counts |= {MONDAY + (start + 6 + m) * 60: poisson(rng, 50) for m in range(9)}
    _, alerts = run(det, None, counts)
    assert [a.details["pattern"] for a in alerts] == ["burst", "sustained", "sustained"], [a.title for a in alerts]
    burst = alerts[0]
    assert burst.dedup_key == "spike:service:billing" and burst.title.startswith("Burst in billing")
    assert 40 <= burst.details["expected"] <= 60 and f"expected {burst.details['expected']:.1f}" in burst.title
    assert {a.dedup_key for a in alerts[1:]} == {"rise:service:billing"}


def test_state_round_trips_and_an_old_flat_baseline_still_loads() -> None:
    rng = random.Random(1)
    det = ServiceDetector(DetectionConfig())
    state, _ = run(det, None, {MONDAY + m * 60: poisson(rng, day_rate(MONDAY + m * 60, 80)) for m in range(1_500)})
    raw = orjson.dumps(state.to_dict())
    assert len(raw) < 8_000  # compact: hourly buckets, not minutes
    again = det.load(orjson.loads(raw))
    assert again is not None and again.to_dict() == state.to_dict()
    old = Baseline.from_dict({"m": 40.0, "v": 90.0, "n": 120})  # written before the seasonal model
    rule = SpikeRule()
    assert not old.shaped and old.expected(MONDAY, rule) == 40.0 and old.n == 120
    assert check_rise(rule, old, MONDAY, {MONDAY - 60 * i: 200 for i in range(4)}, set()) is not None
