"""Recovery over a time window: is an error hurting users, or is the retry absorbing it?

Counts and averages are exact: they come from ``recovery_counts_1m``, which the sink fills
from every processed event that carries ``recovery`` (sampled away or not), never from the
stored raw events. Medians and p95s of automatic recovery times are ClickHouse's
``quantiles`` (exact up to 8,192 recoveries in the range read, a uniform sample beyond).
Manual recovery times are the issues' resolutions by people (``v_resolution_times``: first event,
or reopening, to resolution) within the window; auto-resolutions (``sinks/derived_alerts/auto_resolve.py``)
are counted apart as ``auto_resolved``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel

from schemas.issue_status import AUTO_RESOLVER


class RecoveryMethodRow(BaseModel):
    service: str
    method: str
    episodes: int
    attempted: int
    successful: int
    success_rate_pct: float | None
    avg_ms: float | None
    median_ms: float | None
    p95_ms: float | None


class RecoveryTimes(BaseModel):
    """Automatic (the application's own) or manual (resolved by people, or auto-resolved) recovery times."""

    kind: str
    recoveries: int
    avg_seconds: float | None
    median_seconds: float | None
    p95_seconds: float | None


class IssueRecovery(BaseModel):
    fingerprint: str
    attempted: int
    successful: int
    success_rate_pct: float | None
    avg_ms: float | None


class RecoverySummary(BaseModel):
    attempted: int = 0
    successful: int = 0
    success_rate_pct: float | None = None
    by_method: list[RecoveryMethodRow] = []
    times: list[RecoveryTimes] = []


def rate(successful: int, attempted: int) -> float | None:
    return round(successful * 100 / attempted, 1) if attempted else None


def fmt_seconds(value: float | None) -> str:
    """Seconds, to the millisecond below a minute (automatic recoveries take milliseconds)."""
    return "—" if value is None else f"{value:,.3f} s" if value < 60 else f"{value:,.0f} s"


def _num(value: Any) -> float | None:
    return None if value is None or value != value else round(float(value), 1)  # NaN: no value


_WINDOW = " WHERE minute >= {start:DateTime('UTC')} AND minute <= {end:DateTime('UTC')}"


class RecoveryQueries:
    """Bound parameters only; ``service`` filters every section when given."""

    def __init__(self, client: Client, database: str, start: datetime, end: datetime,
                 service: str | None = None) -> None:
        self.client = client
        self.db = database
        self.service = service
        self.params: dict[str, Any] = {"start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None),
                                       "service": service or ""}

    def _rows(self, sql: str, **extra: Any) -> list[dict[str, Any]]:
        sql = sql.replace("{db}", self.db)
        return list(self.client.query(sql, parameters={**self.params, **extra}).named_results())

    def _where(self) -> str:
        return _WINDOW + (" AND service = {service:String}" if self.service else "")

    def by_method(self) -> list[RecoveryMethodRow]:
        rows = self._rows(
            "SELECT service, toString(method) AS method, sum(episodes) AS episodes, sum(attempted) AS attempted,"
            " sum(successful) AS successful, sum(recovery_ms_sum) AS ms_sum, sum(recovery_ms_n) AS ms_n,"
            " quantilesMerge(0.5, 0.95)(recovery_ms) AS q FROM {db}.recovery_counts_1m" + self._where() +
            " GROUP BY service, method ORDER BY attempted DESC, service, method")
        out = []
        for r in rows:
            n = int(r["ms_n"])
            out.append(RecoveryMethodRow(
                service=r["service"], method=r["method"], episodes=int(r["episodes"]),
                attempted=int(r["attempted"]), successful=int(r["successful"]),
                success_rate_pct=rate(int(r["successful"]), int(r["attempted"])),
                avg_ms=round(int(r["ms_sum"]) / n, 1) if n else None,
                median_ms=_num(r["q"][0]) if n else None, p95_ms=_num(r["q"][1]) if n else None))
        return out

    def by_issue(self, fingerprints: list[str]) -> dict[str, IssueRecovery]:
        if not fingerprints:
            return {}
        rows = self._rows(
            "SELECT fingerprint, sum(attempted) AS attempted, sum(successful) AS successful,"
            " sum(recovery_ms_sum) AS ms_sum, sum(recovery_ms_n) AS ms_n FROM {db}.recovery_counts_1m"
            + self._where() + " AND fingerprint IN {fps:Array(String)} GROUP BY fingerprint", fps=fingerprints)
        return {r["fingerprint"]: IssueRecovery(
            fingerprint=r["fingerprint"], attempted=int(r["attempted"]), successful=int(r["successful"]),
            success_rate_pct=rate(int(r["successful"]), int(r["attempted"])),
            avg_ms=round(int(r["ms_sum"]) / int(r["ms_n"]), 1) if int(r["ms_n"]) else None) for r in rows}

    def times(self) -> list[RecoveryTimes]:
        (auto,) = self._rows(
            "SELECT sum(recovery_ms_n) AS n, sum(recovery_ms_sum) AS ms_sum,"
            " quantilesMerge(0.5, 0.95)(recovery_ms) AS q FROM {db}.recovery_counts_1m" + self._where())
        n = int(auto["n"] or 0)
        automatic = RecoveryTimes(
            kind="automatic", recoveries=n, avg_seconds=round(int(auto["ms_sum"]) / n / 1000, 3) if n else None,
            median_seconds=round(float(auto["q"][0]) / 1000, 3) if n else None,
            p95_seconds=round(float(auto["q"][1]) / 1000, 3) if n else None)
        svc = (" AND r.fingerprint IN (SELECT fingerprint FROM {db}.error_groups"
               " WHERE has(services, {service:String}))" if self.service else "")
        rows = {r["kind"]: r for r in self._rows(
            "SELECT if(a.fingerprint = '', 'manual', 'auto_resolved') AS kind, count() AS n,"
            " avg(r.seconds_to_resolve) AS mean, quantilesExact(0.5, 0.95)(r.seconds_to_resolve) AS q"
            " FROM {db}.v_resolution_times AS r"
            " LEFT JOIN (SELECT fingerprint, changed_at FROM {db}.issue_status_history FINAL"
            "   WHERE status = 'resolved' AND changed_by = {auto:String}) AS a"
            " ON a.fingerprint = r.fingerprint AND a.changed_at = r.resolved_at"
            " WHERE r.resolved_at >= {start:DateTime('UTC')}"
            " AND r.resolved_at < {end:DateTime('UTC')} + INTERVAL 1 SECOND" + svc +  # the last second whole
            " GROUP BY kind", auto=AUTO_RESOLVER)}
        out = [automatic]
        for kind in ("manual", "auto_resolved"):
            r = rows.get(kind)
            m = int(r["n"]) if r else 0
            out.append(RecoveryTimes(
                kind=kind, recoveries=m, avg_seconds=round(float(r["mean"]), 3) if r and m else None,
                median_seconds=float(r["q"][0]) if r and m else None,
                p95_seconds=float(r["q"][1]) if r and m else None))
        return out

    def summary(self) -> RecoverySummary:
        methods = self.by_method()
        attempted = sum(r.attempted for r in methods)
        successful = sum(r.successful for r in methods)
        return RecoverySummary(attempted=attempted, successful=successful, success_rate_pct=rate(successful, attempted),
                               by_method=methods, times=self.times())
