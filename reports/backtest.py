"""``errstream detect backtest``: what the spike rules would have raised on stored traffic.

ClickHouse's per-minute counts (``error_counts_1m``, summed per service) are replayed,
minute by minute on event time, through the same ``ServiceDetector`` the worker runs
(windows, seasonal baseline, burst and sustained-rise rules, cooldowns), once per rule.
Each detector starts cold at the start of the window, as a worker with no history does,
so the first day is the profile's learning day. A rules file (TOML) names variants:

    [[rule]]
    name = "strict"
    factor = 4
    rise_factor = 2.5
    cooldown_seconds = 3600

Keys: the ``SpikeRule`` fields (factor, z, min_count, ramp, rise_factor, rise_z, rise_minutes,
rise_min_count, alpha, seasonal_alpha, var_alpha, warmup, floor, seasonal) and
``cooldown_seconds`` / ``rise_cooldown_seconds``; anything else is an error. Without a file
the one rule is the current settings.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from stream_processors.detection_rules.config import DetectionConfig
from stream_processors.detection_rules.services import ServiceDetector, ServiceState
from stream_processors.detection_rules.spikes import SpikeRule
from stream_processors.detection_signals import Signal

RULE_KEYS = {f.name for f in fields(SpikeRule)}  # every one has bounds below
SPARK = "▁▂▃▄▅▆▇█"
MAX_SERVICES = 200  # services replayed (the busiest), so a huge deployment's backtest stays bounded
MAX_WINDOW = timedelta(days=31)
# allowed values per key (inclusive); the rest of a rule comes from the settings, which bound them too
BOUNDS: dict[str, tuple[float, float]] = {
    "factor": (1.0, 1e6), "z": (0.0, 1e3), "min_count": (1, 1e9), "ramp": (0.0, 1.0), "rise_factor": (1.0, 1e6), "rise_z": (0.0, 1e3),
    "rise_minutes": (0, 60), "rise_min_count": (1, 1e9), "alpha": (1e-6, 1.0), "seasonal_alpha": (1e-6, 1.0),
    "var_alpha": (1e-6, 1.0), "profile_alpha": (1e-6, 1.0), "rv_prior": (0.0, 100.0), "clip": (0.1, 100.0),
    "warmup": (0, 100_000), "floor": (1e-3, 1e6), "seasonal": (0, 1),
    "cooldown_seconds": (0.0, 1e9), "rise_cooldown_seconds": (0.0, 1e9),
}
NO_EVENT = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True, slots=True)
class BacktestRule:
    name: str
    cfg: DetectionConfig


@dataclass(frozen=True, slots=True)
class BacktestAlert:
    rule: str
    service: str
    minute: int  # epoch seconds of the minute that raised it
    pattern: str  # burst | sustained
    count: int
    expected: float
    title: str


def load_rules(path: Path | None, base: DetectionConfig) -> list[BacktestRule]:
    """The rules of a TOML file (``[[rule]]`` tables), or the current settings; ValueError on a bad file."""
    if path is None:
        return [BacktestRule("settings", base)]
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    tables = doc.get("rule")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ValueError(f"{path}: expected one or more [[rule]] tables")
    out: list[BacktestRule] = []
    for i, table in enumerate(tables, start=1):
        out.append(_rule(table, base, f"{path}: rule {i}"))
    if len({r.name for r in out}) != len(out):
        raise ValueError(f"{path}: rule names must be unique")
    return out


def _rule(table: dict[str, Any], base: DetectionConfig, where: str) -> BacktestRule:
    name = table.get("name", where.rsplit(" ", 1)[-1])
    if not isinstance(name, str) or not name.strip() or len(name) > 60:
        raise ValueError(f"{where}: name must be a short string")
    spike: dict[str, Any] = {}
    cfg: dict[str, Any] = {}
    for key, value in table.items():
        if key == "name":
            continue
        if key in ("cooldown_seconds", "rise_cooldown_seconds"):
            target, field_name = cfg, key.removesuffix("_seconds")
        elif key in RULE_KEYS:
            target, field_name = spike, key
        else:
            raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(RULE_KEYS))}, "
                             "cooldown_seconds, rise_cooldown_seconds)")
        default = getattr(base.spike, key) if key in RULE_KEYS else getattr(base, field_name)
        if isinstance(default, bool) != isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: {key} must be {'true or false' if isinstance(default, bool) else 'a number'}")
        lo, hi = BOUNDS[key]
        if not lo <= value <= hi:
            raise ValueError(f"{where}: {key} = {value} is out of range ({lo:g} to {hi:g})")
        target[field_name] = type(default)(value)
    return BacktestRule(name.strip(), replace(base, spike=replace(base.spike, **spike), **cfg))


def minute_counts(client: Client, database: str, start: datetime, end: datetime,
                  service: str | None = None) -> dict[str, list[tuple[int, int]]]:
    """(minute epoch s, events) per service, oldest first, for minutes in [start, end)."""
    where = "minute >= {start:DateTime} AND minute < {end:DateTime}"
    params: dict[str, Any] = {"start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None)}
    if service is not None:
        where += " AND service = {service:String}"
        params["service"] = service
    busiest = client.query(
        f"SELECT service FROM `{database}`.error_counts_1m WHERE {where} GROUP BY service "
        f"ORDER BY sum(events) DESC LIMIT {MAX_SERVICES}", parameters=params).result_rows
    params["services"] = [r[0] for r in busiest]
    rows = client.query(
        f"SELECT service, toUInt32(minute) AS m, toUInt64(sum(events)) FROM `{database}`.error_counts_1m "
        f"WHERE {where} AND service IN {{services:Array(String)}} GROUP BY service, m ORDER BY service, m",
        parameters=params).result_rows
    out: dict[str, list[tuple[int, int]]] = {}
    for svc, minute, n in rows:
        out.setdefault(str(svc), []).append((int(minute), int(n)))
    return out


@dataclass(frozen=True, slots=True)
class BandPoint:
    """What the detector expected of a minute when its events arrived: the expectation and the burst threshold
    (None while the baseline is warming up)."""

    minute: int
    expected: float
    threshold: float | None


def replay(rule: BacktestRule, service: str, counts: list[tuple[int, int]],
           band: list[BandPoint] | None = None) -> list[BacktestAlert]:
    """The alerts ``rule`` raises on one service's minutes (each minute's events arrive mid-minute); with
    ``band``, also what it expected of each minute with events (for the HTML report's chart)."""
    det = ServiceDetector(rule.cfg)
    state: ServiceState | None = None
    out: list[BacktestAlert] = []
    last = counts[-1][0] if counts else 0
    spike = rule.cfg.spike
    for minute, n in [*counts, (last + 2 * 60 + int(rule.cfg.grace), 0)]:  # a final tick closes the last minutes
        ts = minute + 30.0
        sig = Signal(event_id=NO_EVENT, service=service, fingerprint="", title="", level="error", ts=ts, received=ts)
        state, alerts = det.observe(state, sig, n)
        if band is not None and n:
            b = state.baseline
            e = b.burst_expected(minute, spike)
            band.append(BandPoint(minute, e, spike.burst_threshold(e, b.dispersion(spike))
                                  if b.n >= spike.warmup else None))
        for a in alerts:
            d = a.details
            out.append(BacktestAlert(rule.name, service, minute, str(d.get("pattern")), int(d.get("count", 0)),
                                     float(d.get("expected", 0.0)), a.title))
    return out


def run_backtest(rules: list[BacktestRule], counts: dict[str, list[tuple[int, int]]]) -> list[BacktestAlert]:
    return [a for rule in rules for svc in sorted(counts) for a in replay(rule, svc, counts[svc])]


def sparkline(hourly: list[int]) -> str:
    top = max(hourly, default=0)
    return "".join(SPARK[min(len(SPARK) - 1, (len(SPARK) * v) // (top + 1))] if top else SPARK[0] for v in hourly)


def render(rules: list[BacktestRule], counts: dict[str, list[tuple[int, int]]], alerts: list[BacktestAlert],
           start: datetime, end: datetime, width: int = 96) -> list[str]:
    """Per rule: its alerts, then per alerting service its hourly counts with a ^ under each alert's hour."""
    lines = [f"backtest {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC, {len(counts)} services, "
             f"{sum(n for c in counts.values() for _, n in c):,} events; detectors start with no history"]
    first_hour = int(start.timestamp()) // 3_600
    hours = (int(end.timestamp()) - 1) // 3_600 - first_hour + 1  # the hours the window touches
    step = max(1, -(-hours // width))  # hours per plot column
    for rule in rules:
        mine = [a for a in alerts if a.rule == rule.name]
        s = rule.cfg.spike
        lines += ["", f"rule {rule.name}: {len(mine)} alerts ({sum(a.pattern == 'burst' for a in mine)} bursts, "
                      f"{sum(a.pattern == 'sustained' for a in mine)} sustained rises)  [burst {s.factor:g}× / z {s.z:g} "
                      f"/ min {s.min_count}; rise {s.rise_factor:g}× over {s.rise_minutes} min / z {s.rise_z:g} / min "
                      f"{s.rise_min_count}; cooldowns {rule.cfg.cooldown:g} s / {rule.cfg.rise_cooldown:g} s]"]
        for a in mine:
            when = datetime.fromtimestamp(a.minute, UTC)
            lines.append(f"  {when:%Y-%m-%d %H:%M}  {a.service:<24} {a.pattern:<9} seen {a.count:>8,}  "
                         f"expected {a.expected:>10,.1f}  {a.title}")
        for svc in sorted({a.service for a in mine}):
            cols = [0] * -(-hours // step)
            for minute, n in counts.get(svc, []):
                col = (minute // 3_600 - first_hour) // step
                if 0 <= col < len(cols):
                    cols[col] += n
            marks = [" "] * len(cols)
            for a in mine:
                col = (a.minute // 3_600 - first_hour) // step
                if a.service == svc and 0 <= col < len(marks):
                    marks[col] = "^"
            lines += [f"  {svc}  ({step} h per column)", f"    {sparkline(cols)}", f"    {''.join(marks).rstrip()}"]
    return lines
