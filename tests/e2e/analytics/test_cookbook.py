"""Every query of the cookbook in docs/analysts.md, run as printed, with its answer checked.

The SQL is parsed out of the document, so an edited query is tested as edited,
and a query added without an expected answer here fails the suite.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from tests.e2e.analytics.data import ISSUES, Dataset, fp

DOC = Path(__file__).resolve().parents[3] / "docs" / "analysts.md"
_BLOCK = re.compile(r"```sql\n-- name: (\w+)\n(.*?)```", re.DOTALL)

Rows = list[dict[str, Any]]


def cookbook() -> dict[str, str]:
    queries = dict(_BLOCK.findall(DOC.read_text()))
    assert len(queries) >= 20
    return queries


# ---- the oracle: answers computed from the generated events ------------------

def minute(ds: Dataset, p: dict[str, Any]) -> datetime:
    return ds.ts(p).replace(second=0, microsecond=0, tzinfo=None)


def since(ds: Dataset, hours: float) -> list[dict[str, Any]]:
    cut = (ds.now - timedelta(hours=hours)).replace(tzinfo=None)
    return [p for p in ds.processed if minute(ds, p) >= cut]


def user(p: dict[str, Any]) -> str | None:
    return p["event"]["user"]["id"] if p["event"]["user"] else None


def per(ps: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for p in ps:
        out[key(p)].append(p)
    return out


PARAMS: dict[str, dict[str, Any]] = {
    "issue_timeline_per_minute": {"fingerprint": fp("A")},
    "service_hourly_by_level": {"service": "billing"},
    "latest_events_of_issue": {"fingerprint": fp("A")},
    "issue_releases": {"fingerprint": fp("A")},
    "issue_environments": {"fingerprint": fp("E")},
    "users_of_issue": {"fingerprint": fp("A")},
    "status_history": {"fingerprint": fp("E")},
    "chains_through_service": {"service": "checkout"},
    "top_messages": {"fingerprint": fp("A")},
    "events_of_trace": {"trace_id": f"{4:032x}"},
}


def check(name: str, got: Rows, ds: Dataset) -> None:
    stored = [p for p in ds.processed if p["stored"]]
    if name == "errors_per_service_last_hour":
        assert got == [{"service": "billing", "events": 2, "users": 2}, {"service": "checkout", "events": 1, "users": 1}]
    elif name == "service_daily_30d":
        first = (ds.now - timedelta(days=29)).date()
        cells = per([p for p in ds.processed if ds.ts(p).date() >= first],
                    lambda p: (ds.ts(p).date(), p["event"]["service"]))
        assert [(r["day"], r["service"], r["events"], r["users"]) for r in got] == [
            (d, svc, len(ps), len({user(p) for p in ps} - {None})) for (d, svc), ps in sorted(cells.items())]
    elif name == "top_issues_7d":
        week = per(since(ds, 24 * 7), lambda p: p["fingerprint"])
        expected = sorted(((f, len(ps), len({user(p) for p in ps} - {None})) for f, ps in week.items()),
                          key=lambda t: -t[1])
        assert [(r["fingerprint"], r["events"], r["users"]) for r in got] == expected
        assert got[0]["title"] == ISSUES["A"][1]
    elif name == "new_issues_24h":
        assert [r["fingerprint"] for r in got] == [fp("B"), fp("G")]
    elif name == "sampling_per_issue_24h":
        day = per(since(ds, 24), lambda p: p["fingerprint"])
        assert {r["fingerprint"]: (r["events"], r["stored"]) for r in got} == {
            f: (len(ps), sum(p["stored"] for p in ps)) for f, ps in day.items()}
        assert next(r for r in got if r["fingerprint"] == fp("A"))["stored_ratio"] == 0.25
    elif name == "estimated_counts_from_raw":
        day = per([p for p in since(ds, 24) if p["stored"]], lambda p: p["fingerprint"])
        assert {r["fingerprint"]: (r["stored_rows"], r["estimated_events"]) for r in got} == {
            f: (len(ps), round(sum(1 / p["sample_rate"] for p in ps))) for f, ps in day.items()}
        assert next(r for r in got if r["fingerprint"] == fp("A"))["estimated_events"] == 300  # = the true count
    elif name == "issue_timeline_per_minute":
        counts = Counter(minute(ds, p) for p in since(ds, 24) if p["fingerprint"] == fp("A"))
        assert [(r["minute"], r["events"]) for r in got] == sorted(counts.items())
    elif name == "service_hourly_by_level":
        ps = [p for p in since(ds, 24) if p["event"]["service"] == "billing"]
        hours = per(ps, lambda p: minute(ds, p).replace(minute=0))
        assert [(r["hour"], r["critical"], r["error"], r["warning_or_below"]) for r in got] == [
            (h, sum(p["event"]["level"] == "critical" for p in v), sum(p["event"]["level"] == "error" for p in v), 0)
            for h, v in sorted(hours.items())]
    elif name == "busiest_minute":
        counts = Counter(minute(ds, p) for p in since(ds, 24))
        peak = max(counts.values())
        assert got == [{"minute": min(m for m, n in counts.items() if n == peak), "events": peak}]
    elif name == "latest_events_of_issue":
        latest = sorted((p for p in stored if p["fingerprint"] == fp("A")), key=ds.ts, reverse=True)[:20]
        assert [str(r["event_id"]) for r in got] == [p["event"]["event_id"] for p in latest]
    elif name == "event_by_id":
        (r,) = got
        assert (r["service"], r["fingerprint"]) == ("billing", fp("B")) and "OperationalError" in r["exceptions"]
    elif name == "events_of_trace":
        same = sorted((p for p in stored if p["event"].get("trace_id") == f"{4:032x}"), key=ds.ts)
        assert [str(r["event_id"]) for r in got] == [p["event"]["event_id"] for p in same] and len(same) == 3
    elif name == "issues_by_release":
        rel = per(stored, lambda p: p["event"]["release"])
        assert [(r["release"], r["issues"], r["estimated_events"]) for r in got] == [
            (k, len({p["fingerprint"] for p in v}), round(sum(1 / p["sample_rate"] for p in v)))
            for k, v in sorted(rel.items())]
    elif name == "issue_releases":
        assert [(r["release"], r["stored_rows"]) for r in got] == [("0.9.0", 40), ("1.0.0", 75)]
    elif name == "regressions":
        assert [r["fingerprint"] for r in got] == [fp("C")]
    elif name == "issue_movers":
        two = per(since(ds, 48), lambda p: p["fingerprint"])
        cut = (ds.now - timedelta(hours=24)).replace(tzinfo=None)
        rows = []
        for f, ps in two.items():
            cur = sum(minute(ds, p) >= cut for p in ps)
            rows.append((f, cur, len(ps) - cur, 2 * cur - len(ps)))
        assert [(r["fingerprint"], r["current"], r["previous"], r["delta"]) for r in got] == sorted(
            rows, key=lambda t: (-t[3], t[0]))
    elif name == "critical_per_service":
        assert got == [{"service": "billing", "critical": 10}]
    elif name == "issue_environments":
        assert got == [{"environment": "production", "events": 5}, {"environment": "staging", "events": 1}]
    elif name == "multi_service_issues":
        assert got == [{"fingerprint": fp("E"), "title": ISSUES["E"][1], "services": ["billing", "checkout"]}]
    elif name == "daily_by_level":
        first = (ds.now - timedelta(days=6)).date()
        levels = Counter((ds.ts(p).date(), p["event"]["level"]) for p in ds.processed if ds.ts(p).date() >= first)
        order = ["debug", "info", "warning", "error", "critical"]
        assert [(r["day"], r["level"], r["events"]) for r in got] == [
            (d, lvl, n) for (d, lvl), n in sorted(levels.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1])))]
    elif name == "top_culprits":
        assert [(r["culprit"], r["events"]) for r in got] == sorted(
            ((ISSUES[k][2], len(ds.events(fingerprint=fp(k)))) for k in ISSUES), key=lambda t: (-t[1], t[0]))
    elif name == "users_of_issue":
        a = [p for p in ds.processed if p["fingerprint"] == fp("A")]
        assert got == [{"users_in_stored_rows": len({user(p) for p in a if p["stored"]}),
                        "users_all_events": len({user(p) for p in a})}]
    elif name == "mttr_overall":
        assert got == [{"resolutions": 3, "mttr_hours": round((24 + 48 + 20) / 3, 2)}]
    elif name == "status_history":
        assert [r["status"] for r in got] == ["resolved", "new"]
    elif name == "recent_alerts":
        assert [(r["kind"], r["service"]) for r in got] == [("spike", "checkout"), ("new_issue", "billing")]
    elif name == "chains_through_service":
        assert [(r["root_service"], r["event_count"], r["duration_ms"]) for r in got] == [("billing", 3, 2000)]
    elif name == "top_messages":
        assert got == [{"message": ISSUES["A"][1], "stored_rows": 115}]
    elif name == "storage_per_table":
        tables = {r["table"]: r for r in got}
        assert {"error_events", "error_counts_1m", "error_groups"} <= set(tables)
        assert tables["error_events"]["rows"] == len(stored)
    elif name == "retention":
        ttl = {r["name"]: r["ttl"] for r in got}
        assert "toIntervalDay(90)" in ttl["error_events"] and "toIntervalDay(400)" in ttl["error_counts_1m"]
    else:
        pytest.fail(f"cookbook query {name!r} has no expected answer in {__file__}")


@pytest.mark.parametrize("name", sorted(cookbook()))
def test_cookbook_query(name: str, loaded: tuple[Client, Dataset]) -> None:
    client, ds = loaded
    params = dict(PARAMS.get(name, {}))
    if name == "event_by_id":
        params["event_id"] = ds.events(fingerprint=fp("B"))[0]["event"]["event_id"]
    got = list(client.query(cookbook()[name], parameters=params or None).named_results())
    check(name, got, ds)
