"""`errstream report`: what happened in a time window, from ClickHouse.

Every number comes from the incrementally maintained tables — true counts
from ``error_counts_1m``, issue metadata from ``error_groups`` — never from a
scan of raw events, so the report stays fast at hundreds of millions of
events. The window and the service filter are passed as query parameters,
never pasted into SQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel

from reports.merges import ISSUE_OF, MEMBERS_OF, MERGED
from reports.pools import pool
from reports.recovery import RecoveryQueries, RecoverySummary

_SINCE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Timeline bucket sizes, smallest first; the report picks the smallest giving at most MAX_BUCKETS.
BUCKETS = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400]
MAX_BUCKETS = 120
HOURLY_FROM = timedelta(hours=6)  # windows this long or longer read error_counts_1h, aligned to whole hours


def parse_since(text: str) -> timedelta:
    """'90m', '24h', '7d', '2w' → a duration (at least one minute)."""
    m = _SINCE.match(text)
    if not m:
        raise ValueError(f"--since must look like 30m, 24h, 7d or 2w, not {text!r}")
    seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds < 60:
        raise ValueError("--since must be at least 1m (counts are per minute)")
    return timedelta(seconds=seconds)


def bucket_seconds(since: timedelta) -> int:
    total = since.total_seconds()
    return next((b for b in BUCKETS if total / b <= MAX_BUCKETS), BUCKETS[-1])


def bucket_label(seconds: int) -> str:
    """A timeline bucket as people say it: "minute", "5 minutes", "hour", "6 hours", "day"."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds} seconds"


class Overview(BaseModel):
    events: int
    stored: int
    issues: int
    new_issues: int
    users: int
    services: int
    critical: int
    previous_events: int
    change_pct: float | None  # None when the previous period had no events


class IssueRow(BaseModel):
    fingerprint: str
    title: str
    culprit: str
    exception_type: str
    worst_level: str
    status: str
    services: list[str]
    events: int
    previous_events: int
    users: int
    first_seen: datetime | None
    last_seen: datetime | None
    is_new: bool
    recovery_attempted: int = 0  # failure episodes of the issue where the application tried to recover
    recovery_successful: int = 0


class TimelinePoint(BaseModel):
    start: datetime
    events: int
    critical: int
    errors: int  # level error (critical excluded)


class ServiceRow(BaseModel):
    service: str
    events: int
    previous_events: int
    change_pct: float | None
    issues: int
    users: int
    critical: int


class SpikeRow(BaseModel):
    created_at: datetime
    kind: str
    severity: str
    service: str
    fingerprint: str
    title: str
    message: str


class ChainRow(BaseModel):
    trace_id: str
    started_at: datetime
    duration_ms: int
    root_service: str
    root_title: str
    services: list[str]
    event_count: int


class HealthRow(BaseModel):
    """Release health over the window: sessions (or requests), errors and crash-free rates."""

    service: str
    environment: str
    release: str
    sessions: int
    errored_sessions: int
    errors: int
    error_rate_pct: float | None
    crash_free_sessions_pct: float | None
    crash_free_users_pct: float | None


class Report(BaseModel):
    generated_at: datetime
    window_start: datetime
    window_end: datetime
    since: str
    service: str | None
    bucket_seconds: int
    overview: Overview
    top_issues: list[IssueRow]
    timeline: list[TimelinePoint]
    by_service: list[ServiceRow]
    spikes: list[SpikeRow]
    chains: list[ChainRow]
    release_health: list[HealthRow] = []
    recovery: RecoverySummary = RecoverySummary()


def change_pct(current: int, previous: int) -> float | None:
    return None if previous == 0 else round((current - previous) * 100.0 / previous, 1)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The counts table ({counts}) per issue: a merged group's fingerprints under its primary (reports/merges.py).
_ISSUE_ROWS = (f"(SELECT {ISSUE_OF} AS fingerprint, e.{{t}} AS {{t}}, e.service AS service, e.level AS level,"
               " e.events AS events, e.stored AS stored USERS"
               f" FROM {{counts}} AS e LEFT JOIN {MERGED} AS m ON m.fingerprint = e.fingerprint)")
_ISSUE_COUNTS = _ISSUE_ROWS.replace(" USERS", ", e.users AS users")
# The same without user states, from the per-issue counts ({issue_counts}: error_issue_counts_1h for hourly
# windows, error_counts_1m for shorter ones): ranking and counting issues needs no user states.
_ISSUE_EVENTS = _ISSUE_ROWS.replace(" USERS", "").replace("{counts}", "{issue_counts}")


# The issues' rows in the window (a merged group is one issue).
_ISSUE_COUNTS_IN_WINDOW = (f"(SELECT * FROM {_ISSUE_EVENTS}"
                           " WHERE {t} >= {start:DateTime} AND {t} <= {end:DateTime})")
_ISSUES_IN_WINDOW = f"SELECT uniqExact(fingerprint) FROM {_ISSUE_COUNTS_IN_WINDOW} AS w WHERE 1"


class ReportQueries:
    """The report's SQL, one method per section.

    ``{db}`` is replaced by the database name (validated by ``migrate``),
    ``{counts}``/``{t}`` by the counts table and its time column; every other
    ``{name:Type}`` is a ClickHouse query parameter, and times are read as UTC
    whatever the server's time zone. Windows of ``HOURLY_FROM`` or more read
    ``error_counts_1h`` and start on a whole hour; shorter ones read minutes.
    """

    def __init__(self, client: Client, database: str, start: datetime, end: datetime, service: str | None) -> None:
        self.client = client
        self.db = database
        self.hourly = end - start >= HOURLY_FROM
        if self.hourly:
            start = start.replace(minute=0, second=0, microsecond=0)
        self.start, self.end = start, end
        self.prev_start = start - (end - start)
        self.service = service
        self.params: dict[str, Any] = {
            "start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None),
            "prev_start": self.prev_start.replace(tzinfo=None), "service": service or "",
        }

    def _rows(self, sql: str, hourly: bool | None = None, **extra: Any) -> list[dict[str, Any]]:
        hourly = self.hourly if hourly is None else hourly
        sql = (sql.replace("{db}", self.db)
               .replace("{counts}", f"{self.db}.error_counts_1h" if hourly else f"{self.db}.error_counts_1m")
               .replace("{service_counts}", f"{self.db}.error_service_counts_{'1h' if hourly else '1m'}")
               .replace("{issue_counts}", f"{self.db}.error_issue_counts_1h" if hourly else f"{self.db}.error_counts_1m")
               .replace("{t}", "hour" if hourly else "minute")
               .replace(":DateTime}", ":DateTime('UTC')}"))
        return list(self.client.query(sql, parameters={**self.params, **extra}).named_results())

    def _svc(self, column: str = "service") -> str:
        return f" AND {column} = " + "{service:String}" if self.service else ""

    def overview(self) -> Overview:
        # Totals and users from the per-service counts, the number of issues from the per-issue counts without user
        # states (migration 0020: neither grows with the events; merging every issue's hourly user states did).
        (r,) = self._rows(
            "SELECT sumIf(c.events, {t} >= {start:DateTime}) AS events,"
            " sumIf(c.stored, {t} >= {start:DateTime}) AS stored,"
            f" ({_ISSUES_IN_WINDOW + self._svc()}) AS issues,"
            " uniqCombinedMergeIf(12)(c.users, {t} >= {start:DateTime}) AS users,"
            " uniqExactIf(service, {t} >= {start:DateTime}) AS services,"
            " sumIf(c.events, {t} >= {start:DateTime} AND level = 'critical') AS critical,"
            " sumIf(c.events, {t} < {start:DateTime}) AS previous_events"
            " FROM {service_counts} AS c"
            " WHERE {t} >= {prev_start:DateTime} AND {t} <= {end:DateTime}" + self._svc()
        )
        svc = " AND has(services, {service:String})" if self.service else ""
        (n,) = self._rows(
            f"SELECT count() AS new_issues FROM (SELECT {ISSUE_OF} AS issue, min(e.first_seen) AS first,"
            f" groupUniqArrayArray(e.services) AS services FROM {{db}}.error_groups AS e"
            f" LEFT JOIN {MERGED} AS m ON m.fingerprint = e.fingerprint GROUP BY issue)"
            " WHERE first >= {start:DateTime} AND first <= {end:DateTime}" + svc
        )
        ints = {k: int(v) for k, v in r.items()}
        return Overview(**ints, new_issues=int(n["new_issues"]),
                        change_pct=change_pct(ints["events"], ints["previous_events"]))

    def top_issues(self, limit: int) -> list[IssueRow]:
        # Rank by a plain sum of the per-issue counts first; user sets and issue metadata are merged for the winners
        # only, reading only their cells (a filter on the folded fingerprint reached no key: every cell's user
        # state in the window was read).
        top = self._rows(
            f"SELECT fingerprint FROM {_ISSUE_EVENTS} WHERE {{t}} >= {{start:DateTime}} AND {{t}} <= {{end:DateTime}}"
            + self._svc() + " GROUP BY fingerprint ORDER BY sum(events) DESC, fingerprint LIMIT {limit:UInt32}",
            limit=limit)
        if not top:
            return []
        winners = _ISSUE_COUNTS.replace(
            "{counts} AS e", "(SELECT fingerprint, {t}, service, level, events, stored, users FROM {counts}"
            f" WHERE {{t}} >= {{prev_start:DateTime}} AND {{t}} <= {{end:DateTime}} AND {MEMBERS_OF}) AS e")
        rows = self._rows(
            "SELECT t.fingerprint AS fingerprint, t.events AS events, t.previous_events AS previous_events,"
            " t.users AS users, g.title AS title, g.culprit AS culprit, g.exception_type AS exception_type,"
            " toString(g.worst_level) AS worst_level, g.status AS status, g.services AS services,"
            " g.first_seen AS first_seen, g.last_seen AS last_seen"
            " FROM (SELECT fingerprint, sumIf(c.events, {t} >= {start:DateTime}) AS events,"
            "  sumIf(c.events, {t} < {start:DateTime}) AS previous_events,"
            "  uniqCombinedMergeIf(12)(c.users, {t} >= {start:DateTime}) AS users"
            f"  FROM {winners} AS c"
            "  WHERE {t} >= {prev_start:DateTime} AND {t} <= {end:DateTime}" + self._svc() +
            "  AND fingerprint IN {fps:Array(String)} GROUP BY fingerprint) AS t"
            # only the columns shown: `*` made the view merge the user states of every issue, for ten rows
            " LEFT JOIN (SELECT fingerprint, title, culprit, exception_type, worst_level, status, services, first_seen,"
            " last_seen FROM {db}.v_error_groups WHERE fingerprint IN {fps:Array(String)}) AS g"
            " ON g.fingerprint = t.fingerprint ORDER BY events DESC, fingerprint",
            fps=[r["fingerprint"] for r in top],
        )
        out = []
        for r in rows:
            first = _utc(r["first_seen"])
            out.append(IssueRow(
                **{k: r[k] for k in ("fingerprint", "title", "culprit", "exception_type", "worst_level", "status")},
                services=list(r["services"]), events=int(r["events"]), previous_events=int(r["previous_events"]),
                users=int(r["users"]), first_seen=first, last_seen=_utc(r["last_seen"]),
                is_new=first is not None and first >= self.start,
            ))
        return out

    def timeline(self, bucket: int) -> list[TimelinePoint]:
        rows = self._rows(
            "SELECT toStartOfInterval({t}, toIntervalSecond({bucket:UInt32})) AS t, sum(c.events) AS events,"
            " sumIf(c.events, level = 'critical') AS critical, sumIf(c.events, level = 'error') AS errors"
            " FROM {service_counts} AS c"
            " WHERE {t} >= {start:DateTime} AND {t} <= {end:DateTime}" + self._svc() +
            " GROUP BY t ORDER BY t",
            hourly=bucket >= 3600, bucket=bucket,
        )
        by_start = {_utc(r["t"]): r for r in rows}
        first = datetime.fromtimestamp(self.start.timestamp() // bucket * bucket, UTC)
        points = []
        t = first
        while t <= self.end:
            r = by_start.get(t, {})
            points.append(TimelinePoint(start=t, events=int(r.get("events", 0)),
                                        critical=int(r.get("critical", 0)), errors=int(r.get("errors", 0))))
            t += timedelta(seconds=bucket)
        return points

    def by_service(self) -> list[ServiceRow]:
        rows = self._rows(
            "SELECT c.service AS service, sumIf(c.events, {t} >= {start:DateTime}) AS events,"
            " sumIf(c.events, {t} < {start:DateTime}) AS previous_events, any(i.issues) AS issues,"
            " uniqCombinedMergeIf(12)(c.users, {t} >= {start:DateTime}) AS users,"
            " sumIf(c.events, {t} >= {start:DateTime} AND level = 'critical') AS critical"
            " FROM {service_counts} AS c"
            f" LEFT JOIN (SELECT service, uniqExact(fingerprint) AS issues FROM {_ISSUE_COUNTS_IN_WINDOW}"
            f"   AS w GROUP BY service) AS i ON i.service = c.service"
            " WHERE {t} >= {prev_start:DateTime} AND {t} <= {end:DateTime}" + self._svc("c.service") +
            " GROUP BY service ORDER BY events DESC, service"
        )
        return [
            ServiceRow(service=r["service"], events=int(r["events"]), previous_events=int(r["previous_events"]),
                       change_pct=change_pct(int(r["events"]), int(r["previous_events"])), issues=int(r["issues"]),
                       users=int(r["users"]), critical=int(r["critical"]))
            for r in rows
        ]

    def spikes(self, limit: int = 20) -> list[SpikeRow]:
        """Spike alerts only (threshold alerts are in the alerts feed: a box called "Spikes" listed them too)."""
        rows = self._rows(
            "SELECT created_at, kind, severity, service, fingerprint, title, message FROM {db}.alerts FINAL"
            " WHERE kind = 'spike' AND created_at >= {start:DateTime}"
            " AND created_at <= {end:DateTime}" + self._svc() +
            " ORDER BY created_at DESC LIMIT {limit:UInt32}",
            limit=limit,
        )
        return [SpikeRow(**{**r, "created_at": _utc(r["created_at"])}) for r in rows]

    def chains(self, limit: int = 10) -> list[ChainRow]:
        svc = " AND has(services, {service:String})" if self.service else ""
        rows = self._rows(
            "SELECT trace_id, started_at, toInt64(dateDiff('millisecond', started_at, ended_at)) AS duration_ms,"
            " root_service, root_title, services, event_count FROM {db}.error_chains FINAL"
            " WHERE started_at >= {start:DateTime} AND started_at <= {end:DateTime}" + svc +
            " ORDER BY event_count DESC, started_at DESC LIMIT {limit:UInt32}",
            limit=limit,
        )
        return [ChainRow(**{**r, "started_at": _utc(r["started_at"]), "services": list(r["services"])}) for r in rows]


    def release_health(self, limit: int = 20) -> list[HealthRow]:
        rows = self._rows(
            "SELECT h.service AS service, h.environment AS environment, h.release AS release,"
            " sum(h.sessions) AS sessions, sum(h.errored_sessions) AS errored_sessions,"
            " sum(h.crashed_sessions) AS crashed, sum(h.users) AS users, sum(h.crashed_users) AS crashed_users,"
            " sum(h.errors) AS errors"
            " FROM (SELECT r.*, ifNull(e.errors, 0) AS errors FROM {db}.v_release_health AS r"
            "   LEFT JOIN {db}.v_error_rate AS e ON e.hour = r.hour AND e.service = r.service"
            "   AND e.environment = r.environment AND e.release = r.release) AS h"
            " WHERE h.hour >= toStartOfHour({start:DateTime}) AND h.hour <= {end:DateTime}" + self._svc("h.service") +
            " GROUP BY service, environment, release ORDER BY sessions DESC LIMIT {limit:UInt32}",
            limit=limit,
        )
        out = []
        for r in rows:
            sessions, users = int(r["sessions"]), int(r["users"])
            out.append(HealthRow(
                service=r["service"], environment=r["environment"], release=r["release"], sessions=sessions,
                errored_sessions=int(r["errored_sessions"]), errors=int(r["errors"]),
                error_rate_pct=round(100 * int(r["errored_sessions"]) / sessions, 2) if sessions else None,
                crash_free_sessions_pct=round(100 * (1 - int(r["crashed"]) / sessions), 2) if sessions else None,
                crash_free_users_pct=round(100 * (1 - int(r["crashed_users"]) / users), 2) if users else None,
            ))
        return out


def report_window(since: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The report's window for ``since`` ending ``now``: its ``window_start`` (a whole minute; a whole hour for
    windows of ``HOURLY_FROM`` or more) and ``window_end``."""
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    start = (end - parse_since(since)).replace(second=0)
    if end - start >= HOURLY_FROM:
        start = start.replace(minute=0)
    return start, end


def build_report(
    client: Client, database: str, since: str, service: str | None = None, top: int = 10,
    now: datetime | None = None,
) -> Report:
    """The report's sections are independent queries, so they run at once (as the issue page's do): a ClickHouse
    server serves them in parallel, and even a serialised one (embedded chDB) overlaps their round trips and
    the decoding of their results."""
    window = parse_since(since)
    start, end = report_window(since, now)
    q = ReportQueries(client, database, start, end, service)
    bucket = bucket_seconds(window)
    recovery = RecoveryQueries(client, database, q.start, end, service)
    run = pool("report-queries")
    top_issues = run.submit(q.top_issues, top)
    sections = {name: run.submit(fn) for name, fn in (
        ("overview", q.overview), ("timeline", lambda: q.timeline(bucket)), ("by_service", q.by_service),
        ("spikes", q.spikes), ("chains", q.chains), ("release_health", q.release_health),
        ("recovery", recovery.summary))}
    issues = top_issues.result()
    recovered = recovery.by_issue([i.fingerprint for i in issues])
    for issue in issues:
        if (r := recovered.get(issue.fingerprint)) is not None:
            issue.recovery_attempted, issue.recovery_successful = r.attempted, r.successful
    return Report(
        generated_at=datetime.now(UTC), window_start=q.start, window_end=end, since=since, service=service,
        bucket_seconds=bucket, top_issues=issues, **{name: f.result() for name, f in sections.items()},
    )

