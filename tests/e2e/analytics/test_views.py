"""Every analyst view, on embedded ClickHouse, against a history with known answers.

The data goes in through the sink's row builders and the same deduplicated
inserts, so the materialized views (error_counts_1m, error_groups) are what is
really under test; the expected numbers come from the generated events (an
independent Python oracle) or from how the history was designed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from tests.e2e.analytics import data
from tests.e2e.analytics.data import Dataset, fp


def rows(client: Client, sql: str, **params: Any) -> list[dict[str, Any]]:
    return list(client.query(sql, parameters=params or None).named_results())


def within(ds: Dataset, p: dict[str, Any], hours: float) -> bool:
    return ds.ts(p) >= ds.now - timedelta(hours=hours)


def test_error_groups_hold_true_counts_users_and_issue_metadata(loaded: tuple[Client, Dataset]) -> None:
    client, ds = loaded
    got = {r["fingerprint"]: r for r in rows(client, "SELECT * FROM v_error_groups")}
    assert set(got) == {fp(k) for k in data.ISSUES}
    for issue, (etype, title, culprit) in data.ISSUES.items():
        evs = ds.events(fingerprint=fp(issue))
        g = got[fp(issue)]
        assert (g["exception_type"], g["title"], g["culprit"]) == (etype, title, culprit)
        assert g["events"] == len(evs)
        assert g["stored"] == sum(p["stored"] for p in evs)
        assert g["users"] == len({p["event"]["user"]["id"] for p in evs if p["event"]["user"]})
        assert g["first_seen"] == min(ds.ts(p) for p in evs).replace(tzinfo=None)
        assert g["last_seen"] == max(ds.ts(p) for p in evs).replace(tzinfo=None)
        assert g["services"] == sorted({p["event"]["service"] for p in evs})
        assert g["releases"] == sorted({p["event"]["release"] for p in evs})
        assert g["environments"] == sorted({p["event"]["environment"] for p in evs})
    assert got[fp("A")]["events"] == 340 and got[fp("A")]["stored"] == 115  # 1 in 4 of 300 + all 40
    assert got[fp("B")]["worst_level"] == "critical"
    status = {k: (got[fp(k)]["status"], got[fp(k)]["is_open"]) for k in data.ISSUES}
    assert status == {
        "A": ("new", True), "B": ("investigating", True), "C": ("regressed", True), "D": ("resolved", False),
        "E": ("new", True), "F": ("ignored", False), "G": ("new", True),
    }  # C was resolved 10 h ago and came back 5 h ago: regressed (and open) without a status change


def test_recent_errors_are_the_stored_events_of_the_last_day_newest_first(loaded: tuple[Client, Dataset]) -> None:
    client, ds = loaded
    got = rows(client, "SELECT event_id, timestamp, sample_rate FROM v_recent_errors")
    expected = sorted(
        (p for p in ds.processed if p["stored"] and within(ds, p, 24)), key=ds.ts, reverse=True,
    )
    assert [str(r["event_id"]) for r in got] == [p["event"]["event_id"] for p in expected]
    assert {round(r["sample_rate"], 2) for r in got} == {0.25, 1.0}


def _issues_24h_oracle(ds: Dataset) -> dict[str, tuple[int, int]]:
    events: dict[str, int] = defaultdict(int)
    users: dict[str, set[str]] = defaultdict(set)
    for p in ds.processed:
        if within(ds, p, 24):
            events[p["fingerprint"]] += 1
            if p["event"]["user"]:
                users[p["fingerprint"]].add(p["event"]["user"]["id"])
    return {f: (n, len(users[f])) for f, n in events.items()}


def test_top_issues_by_events_and_by_users(loaded: tuple[Client, Dataset]) -> None:
    client, ds = loaded
    oracle = _issues_24h_oracle(ds)
    by_events = rows(client, "SELECT fingerprint, events_24h, users_24h, is_new FROM v_top_issues_by_events")
    by_users = rows(client, "SELECT fingerprint FROM v_top_issues_by_users LIMIT 3")
    assert len(rows(client, "SELECT * FROM v_issues_24h")) == len(oracle)
    assert {r["fingerprint"]: (r["events_24h"], r["users_24h"]) for r in by_events} == oracle
    assert [r["fingerprint"] for r in by_events][:3] == [fp("A"), fp("G"), fp("B")]
    assert [r["fingerprint"] for r in by_users] == [fp("G"), fp("A"), fp("B")]
    assert {r["fingerprint"] for r in by_events if r["is_new"]} == {fp("B"), fp("G")}


def test_unresolved_critical_lists_only_open_critical_issues(loaded: tuple[Client, Dataset]) -> None:
    client, _ = loaded
    got = rows(client, "SELECT fingerprint, status FROM v_unresolved_critical")
    assert got == [{"fingerprint": fp("B"), "status": "investigating"}]  # D is critical but resolved


def test_service_summary_of_the_last_day(loaded: tuple[Client, Dataset]) -> None:
    client, ds = loaded
    got = {r["service"]: r for r in rows(client, "SELECT * FROM v_service_summary")}
    for service in ("checkout", "billing", "auth"):
        evs = [p for p in ds.events(service=service) if within(ds, p, 24)]
        r = got[service]
        assert r["events"] == len(evs)
        assert r["stored"] == sum(p["stored"] for p in evs)
        assert r["issues"] == len({p["fingerprint"] for p in evs})
        assert r["users"] == len({p["event"]["user"]["id"] for p in evs if p["event"]["user"]})
        assert r["critical"] == sum(p["event"]["level"] == "critical" for p in evs)
    assert [r["service"] for r in rows(client, "SELECT service FROM v_service_summary")] == [
        "checkout", "billing", "auth"]


def test_daily_trends_per_day_and_service(loaded: tuple[Client, Dataset]) -> None:
    client, ds = loaded
    oracle: dict[tuple[str, str], int] = defaultdict(int)
    first_day = (ds.now - timedelta(days=29)).date()
    for p in ds.processed:
        day = ds.ts(p).date()
        if day >= first_day:
            oracle[(day.isoformat(), p["event"]["service"])] += 1
    got = {(r["day"].isoformat(), r["service"]): r["events"] for r in rows(client, "SELECT * FROM v_daily_trends")}
    assert got == dict(oracle)
    assert sum(got.values()) == len(ds.processed)  # all of the history is within 30 days


def test_unresolved_by_age_and_priority(loaded: tuple[Client, Dataset]) -> None:
    client, _ = loaded
    got = rows(client, "SELECT fingerprint, priority, age_bucket FROM v_unresolved_by_age")
    assert [(r["fingerprint"], r["priority"], r["age_bucket"]) for r in got] == [
        (fp("G"), "P1", "1h-1d"),  # 120 users
        (fp("B"), "P1", "1h-1d"),  # critical
        (fp("A"), "P2", "1d-7d"),  # >= 10 users
        (fp("E"), "P3", "7d-30d"),  # an error, few users, a regression
        (fp("C"), "P4", "1d-7d"),  # warnings only (resolved, but seen again)
    ]


def test_resolution_times_and_mean_time_to_resolution(loaded: tuple[Client, Dataset]) -> None:
    client, _ = loaded
    got = {r["fingerprint"]: r["seconds_to_resolve"] for r in rows(client, "SELECT * FROM v_resolution_times")}
    assert got == {fp("D"): 24 * 3600, fp("E"): 48 * 3600, fp("C"): 20 * 3600}
    mttr = rows(client, "SELECT sum(resolutions) AS n, sum(mttr_hours * resolutions) / n AS mean FROM v_mttr")
    assert mttr == [{"n": 3, "mean": pytest.approx(92 / 3, abs=0.01)}]


def test_error_rate_change_versus_previous_day(loaded: tuple[Client, Dataset]) -> None:
    client, _ = loaded
    got = {r["service"]: (r["events_current"], r["events_previous"], r["change_pct"])
           for r in rows(client, "SELECT * FROM v_error_rate_change")}
    assert got == {
        "checkout": (451, 40, 1027.5),  # A 300 + G 150 + E's staging 1 today; A 40 yesterday
        "billing": (12, 0, None),  # nothing the day before: no percentage
        "auth": (5, 10, -50.0),
    }


def test_every_view_is_tested() -> None:
    """A new view must come with a test here."""
    import re
    from importlib import resources

    sql = (resources.files("sinks.clickhouse") / "migrations").joinpath("0005_analyst_views.sql").read_text()
    views = set(re.findall(r"CREATE OR REPLACE VIEW \{db\}\.(v_\w+)", sql))
    source = Path(__file__).read_text()
    assert views and all(v in source for v in views), views - {v for v in views if v in source}
