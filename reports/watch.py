"""``errstream watch``: the errors of the last minutes, live, in two ClickHouse queries per refresh.

One query ranks the issues of the window (``error_counts_1m``: this window against the one
before, a per-minute trend, the issue's first time from ``error_groups`` and its recovery
counts from ``recovery_counts_1m``, each read only for the ranked fingerprints); the other
gives the totals per service with their recovery rates. Both read only the minute cells of
two windows, so a refresh costs about the same whatever the history holds.

A spike here is an issue whose window has at least ``SPIKE_FACTOR`` times the events of the
previous window (and at least ``SPIKE_MIN`` events); a new issue is one first seen within the
window. Rendering is separate (``render_rich`` for a live terminal, ``render_plain`` for logs
and dumb terminals) so the snapshot can be tested on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel
from rich.console import Group
from rich.table import Table
from rich.text import Text

from reports.recovery import rate

SPIKE_FACTOR = 3.0
SPIKE_MIN = 10
LEVEL_RANK = {"debug": 1, "info": 2, "warning": 3, "error": 4, "critical": 5}
_BLOCKS = " ▁▂▃▄▅▆▇█"


class WatchIssue(BaseModel):
    fingerprint: str
    title: str
    service: str
    level: str
    events: int  # in the window
    previous: int  # in the window before
    per_minute: list[int]  # the window's minutes, oldest first
    first_seen: datetime | None
    recovery_attempted: int
    recovery_successful: int

    @property
    def is_new(self) -> bool:
        return False if self.first_seen is None else self.first_seen >= datetime.now(UTC) - timedelta(
            minutes=len(self.per_minute))

    @property
    def is_spike(self) -> bool:
        return self.events >= SPIKE_MIN and self.events >= SPIKE_FACTOR * max(self.previous, 1)


class WatchService(BaseModel):
    service: str
    events: int
    previous: int
    issues: int
    recovery_attempted: int
    recovery_successful: int


class WatchSnapshot(BaseModel):
    at: datetime
    minutes: int
    issues: list[WatchIssue]
    services: list[WatchService]

    @property
    def events(self) -> int:
        return sum(s.events for s in self.services)


class WatchQueries:
    """The two queries of a refresh; filters are bound parameters."""

    def __init__(self, client: Client, database: str, *, minutes: int = 5, top: int = 10,
                 service: str | None = None, level: str | None = None) -> None:
        if level is not None and level not in LEVEL_RANK:
            raise ValueError(f"--level must be one of {', '.join(LEVEL_RANK)}, not {level!r}")
        self.client = client
        self.db = database
        self.minutes = minutes
        self.top = top
        self.service = service
        self.level = level
        self.queries = 0  # how many queries this watcher sent (the budget is two per refresh)

    def _filters(self) -> str:
        out = " AND service = {service:String}" if self.service else ""
        return out + (" AND toInt8(level) >= {level:Int8}" if self.level else "")

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.queries += 1
        return list(self.client.query(sql.replace("{db}", self.db), parameters=params).named_results())

    def snapshot(self, now: datetime | None = None) -> WatchSnapshot:
        now = (now or datetime.now(UTC)).astimezone(UTC)
        current = now.replace(second=0, microsecond=0) - timedelta(minutes=self.minutes - 1)
        params = {"cur": current.replace(tzinfo=None), "prev": (current - timedelta(minutes=self.minutes)).replace(
            tzinfo=None), "service": self.service or "", "level": LEVEL_RANK.get(self.level or "", 0), "top": self.top}
        window = " WHERE minute >= {prev:DateTime('UTC')}" + self._filters()
        ranked = ("SELECT fingerprint FROM {db}.error_counts_1m" + window.replace("{prev:", "{cur:") +
                  " GROUP BY fingerprint ORDER BY sum(events) DESC, fingerprint LIMIT {top:UInt32}")
        issues = self._rows(
            "SELECT c.fingerprint AS fingerprint, c.svc AS service, c.worst AS level, c.n_now AS events,"
            " c.n_prev AS previous, c.trend AS trend, g.title AS title, g.first_seen AS first_seen,"
            " r.n_att AS attempted, r.n_ok AS successful"
            " FROM (SELECT fingerprint, any(service) AS svc, toString(max(level)) AS worst,"
            "   sumIf(events, minute >= {cur:DateTime('UTC')}) AS n_now,"
            "   sumIf(events, minute < {cur:DateTime('UTC')}) AS n_prev,"
            "   sumMapIf([toUInt16(dateDiff('minute', {cur:DateTime('UTC')}, minute))], [toUInt64(events)],"
            "            minute >= {cur:DateTime('UTC')}) AS trend"
            "   FROM {db}.error_counts_1m" + window + f" AND fingerprint IN ({ranked}) GROUP BY fingerprint) AS c"
            f" LEFT JOIN (SELECT fingerprint, anyLast(title) AS title, min(first_seen) AS first_seen"
            f"   FROM {{db}}.error_groups WHERE fingerprint IN ({ranked}) GROUP BY fingerprint) AS g"
            "   ON g.fingerprint = c.fingerprint"
            " LEFT JOIN (SELECT fingerprint, sum(attempted) AS n_att, sum(successful) AS n_ok"
            "   FROM {db}.recovery_counts_1m WHERE minute >= {cur:DateTime('UTC')}"
            + (" AND service = {service:String}" if self.service else "") +
            f"   AND fingerprint IN ({ranked}) GROUP BY fingerprint) AS r ON r.fingerprint = c.fingerprint"
            " ORDER BY events DESC, fingerprint", params)
        services = self._rows(
            "SELECT c.service AS service, c.n_now AS events, c.n_prev AS previous, c.n_issues AS issues,"
            " r.n_att AS attempted, r.n_ok AS successful"
            " FROM (SELECT service, sumIf(events, minute >= {cur:DateTime('UTC')}) AS n_now,"
            "   sumIf(events, minute < {cur:DateTime('UTC')}) AS n_prev,"
            "   uniqExactIf(fingerprint, minute >= {cur:DateTime('UTC')}) AS n_issues"
            "   FROM {db}.error_counts_1m" + window + " GROUP BY service) AS c"
            " LEFT JOIN (SELECT toString(service) AS service, sum(attempted) AS n_att,"
            "   sum(successful) AS n_ok FROM {db}.recovery_counts_1m WHERE minute >= {cur:DateTime('UTC')}"
            + (" AND service = {service:String}" if self.service else "") +
            "   GROUP BY service) AS r ON r.service = c.service"
            " ORDER BY events DESC, service", params)
        return WatchSnapshot(
            at=now, minutes=self.minutes,
            issues=[WatchIssue(
                fingerprint=r["fingerprint"], title=r["title"] or r["fingerprint"], service=r["service"],
                level=r["level"], events=int(r["events"]), previous=int(r["previous"]),
                per_minute=[int(dict(zip(*r["trend"], strict=True)).get(i, 0)) for i in range(self.minutes)],
                first_seen=_utc(r["first_seen"]), recovery_attempted=int(r["attempted"] or 0),
                recovery_successful=int(r["successful"] or 0)) for r in issues if int(r["events"])],
            services=[WatchService(
                service=r["service"], events=int(r["events"]), previous=int(r["previous"]), issues=int(r["issues"]),
                recovery_attempted=int(r["attempted"] or 0), recovery_successful=int(r["successful"] or 0))
                for r in services],
        )


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.year <= 1970:  # a LEFT JOIN without a match gives the type's default
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sparkline(values: list[int]) -> str:
    peak = max(values, default=0)
    return "".join(_BLOCKS[max(1, round(v / peak * 8))] if v and peak else _BLOCKS[0] for v in values)


def trend(events: int, previous: int) -> str:
    if previous == 0:
        return "new" if events else "±0"
    pct = (events - previous) * 100 / previous
    return f"{pct:+.0f}%"


def _recovery(attempted: int, successful: int) -> str:
    pct = rate(successful, attempted)
    return "—" if pct is None else f"{pct:.0f}% of {attempted:,}"


def _marks(issue: WatchIssue) -> str:
    return " ".join(m for m, on in (("NEW", issue.is_new), ("SPIKE", issue.is_spike)) if on)


def _head(s: WatchSnapshot, filters: str) -> str:
    return (f"errstream watch · {s.at:%Y-%m-%d %H:%M:%S} UTC · last {s.minutes} min{filters} · "
            f"{s.events:,} events, {len(s.issues)} issues shown")


def render_plain(s: WatchSnapshot, filters: str = "") -> str:
    """Plain lines, no escape codes: for logs, pipes and dumb terminals."""
    lines = [_head(s, filters)]
    for i in s.issues:
        lines.append(f"  {i.events:>7,} {trend(i.events, i.previous):>6} [{sparkline(i.per_minute)}] "
                     f"{i.level:<8} {i.service:<16} {i.title[:80]}  recovered {_recovery(i.recovery_attempted, i.recovery_successful)}"
                     f"{'  ' + _marks(i) if _marks(i) else ''}")
    for v in s.services:
        lines.append(f"  service {v.service}: {v.events:,} events ({trend(v.events, v.previous)}), {v.issues} issues, "
                     f"recovered {_recovery(v.recovery_attempted, v.recovery_successful)}")
    if not s.issues:
        lines.append("  no errors in this window")
    return "\n".join(lines)


def render_rich(s: WatchSnapshot, filters: str = "") -> Group:
    issues = Table(title=_head(s, filters), title_justify="left", expand=True)
    for col, kw in (("events", {"justify": "right"}), ("trend", {"justify": "right"}), ("per minute", {}),
                    ("level", {}), ("service", {}), ("issue", {"ratio": 1}), ("recovered", {"justify": "right"})):
        issues.add_column(col, **kw)  # type: ignore[arg-type]
    for i in s.issues:
        title = Text(i.title)
        if i.is_new:
            title.append("  NEW", style="bold magenta")
        if i.is_spike:
            title.append("  SPIKE", style="bold red")
        issues.add_row(f"{i.events:,}", trend(i.events, i.previous), Text(sparkline(i.per_minute), style="yellow"),
                       i.level, i.service, title, _recovery(i.recovery_attempted, i.recovery_successful))
    services = Table(title="services", title_justify="left")
    for col in ("service", "events", "trend", "issues", "recovered"):
        services.add_column(col, justify="left" if col == "service" else "right")
    for v in s.services:
        services.add_row(v.service, f"{v.events:,}", trend(v.events, v.previous), str(v.issues),
                         _recovery(v.recovery_attempted, v.recovery_successful))
    empty = Text("no errors in this window", style="dim")
    return Group(issues if s.issues else empty, services)
