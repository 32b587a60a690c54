"""Reading issues back from ClickHouse: the latest status, its history, the issues whose status changed.

An issue with no recorded change is ``new``; a resolved issue seen again since its resolution is ``regressed``
(the same rule as the ``v_error_groups`` view, sinks/clickhouse/migrations/0006). The CLI (``errstream issue``) and the web
app read through here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from errstream_core.settings import Settings
from reports.merges import MERGE_HISTORY_SQL, MERGED

# The status people see: recorded status, except a resolved issue whose last event is newer than the resolution.
_SHOWN_STATUS = ("if(toString(s.status) = 'resolved' AND g.last_seen > s.changed_at, 'regressed', "
                 "toString(s.status))")


def _last_seen(db: str, where: str) -> str:
    return (f"LEFT JOIN (SELECT fingerprint, max(last_seen) AS last_seen FROM {db}.error_groups "
            f"WHERE {where} GROUP BY fingerprint) AS g ON g.fingerprint = s.fingerprint")


def latest_status(client: Any, settings: Settings, fingerprint: str) -> dict[str, Any] | None:
    db = settings.clickhouse_database
    rows = client.query(
        f"SELECT {_SHOWN_STATUS}, s.changed_at, s.changed_by, s.note, g.last_seen, s.ignore_until, "
        "s.ignore_until_events, s.ignore_until_escalating, s.escalating_forecast "
        f"FROM (SELECT * FROM {db}.issue_status FINAL WHERE fingerprint = {{fp:String}}) AS s "
        + _last_seen(db, "fingerprint = {fp:String}"), parameters={"fp": fingerprint},
    ).result_rows
    if not rows:
        return None
    status, changed_at, changed_by, note, last_seen, until, until_events, escalating, forecast = rows[0]
    return {"status": status, "changed_at": changed_at, "changed_by": changed_by, "note": note,
            "last_seen": last_seen, "ignore_until": until, "ignore_until_events": until_events,
            "ignore_until_escalating": bool(escalating), "escalating_forecast": list(forecast)}


def status_history(client: Any, settings: Settings, fingerprint: str) -> list[tuple[Any, ...]]:
    return list(client.query(
        f"SELECT changed_at, toString(status), changed_by, note FROM {settings.clickhouse_database}"
        ".issue_status_history FINAL WHERE fingerprint = {fp:String} ORDER BY changed_at",
        parameters={"fp": fingerprint},
    ).result_rows)


def list_statuses(client: Any, settings: Settings, statuses: list[str], limit: int) -> list[tuple[Any, ...]]:
    """Issues with a recorded status change, most recently changed first: (fingerprint, shown status, changed at,
    by, note, title, events, merged fingerprints). A merged group is one row, its primary's, with the group's
    summed count; its members are not listed on their own."""
    db = settings.clickhouse_database
    where = "WHERE shown_status IN {st:Array(String)}" if statuses else ""
    return list(client.query(
        f"SELECT s.fingerprint, {_SHOWN_STATUS} AS shown_status, s.changed_at, s.changed_by, s.note, g.title, "
        "g.events, greatest(length(g.members), 1) - 1 "
        f"FROM (SELECT * FROM {db}.issue_status FINAL WHERE fingerprint NOT IN (SELECT fingerprint FROM "
        f"{MERGED.replace('{db}', db)})) AS s "
        f"LEFT JOIN (SELECT fingerprint, title, events, members, last_seen FROM {db}.v_error_groups "
        f"  WHERE fingerprint IN (SELECT fingerprint FROM {db}.issue_status)) AS g ON g.fingerprint = s.fingerprint "
        f"{where} ORDER BY s.changed_at DESC LIMIT {{n:UInt32}}",
        parameters={"st": statuses, "n": limit},
    ).result_rows)


def merge_history(client: Any, settings: Settings, fingerprint: str) -> list[dict[str, Any]]:
    """Every merge and unmerge of ``fingerprint`` and of the fingerprints ever merged into it, oldest first."""
    return list(client.query(MERGE_HISTORY_SQL.replace("{db}", settings.clickhouse_database),
                             parameters={"fp": fingerprint}).named_results())


def match_fingerprints(client: Any, settings: Settings, prefix: str, limit: int = 10) -> list[str]:
    """Fingerprints of known issues (seen in ``error_groups`` or given a status) that start with ``prefix``.

    Reports and ``alerts tail`` show 12 characters; people type what they see, so any unique prefix names
    an issue. Sorted, at most ``limit``.
    """
    db = settings.clickhouse_database
    return [row[0] for row in client.query(
        f"SELECT fingerprint FROM (SELECT fingerprint FROM {db}.error_groups WHERE startsWith(fingerprint, {{p:String}}) "
        f"UNION DISTINCT SELECT fingerprint FROM {db}.issue_status WHERE startsWith(fingerprint, {{p:String}})) "
        "ORDER BY fingerprint LIMIT {n:UInt32}",
        parameters={"p": prefix, "n": limit},
    ).result_rows]


def workflow_state(client: Any, settings: Settings, fingerprints: list[str]) -> dict[str, dict[str, Any]]:
    """The workflow state of each issue as it stands now, plus its true event count and releases.

    A change must carry the issue's whole state (the status topic is compacted), so the
    web app and ``errstream issue assign`` read it here before publishing. The status is
    the effective one: a regressed issue or an expired ignore counts as ``new`` — an
    assignment must not re-resolve an issue that came back. Issues with no recorded
    change come back as ``new``; issues never seen (no events) from ``issue_status`` alone.
    """
    from reports.issue_queries.sql import PAGE_STATE_SQL

    db = settings.clickhouse_database
    out: dict[str, dict[str, Any]] = {}
    seen = client.query(PAGE_STATE_SQL.replace("{db}", db), parameters={"fps": fingerprints}).named_results()
    for r in seen:
        out[r["fingerprint"]] = {
            "status": "new" if r["status"] == "regressed" else r["status"], "assignee": r["assignee"] or "",
            "ignore_until": r["ignore_until"], "ignore_until_events": r["ignore_until_events"],
            "ignore_events_baseline": r["ignore_events_baseline"],
            "resolved_in_next_release": bool(r["resolved_in_next_release"]),
            "resolved_releases": list(r["resolved_releases"] or []), "events": int(r["events"]),
            "releases": list(r["releases"]), "seen": True,
            "ignore_until_escalating": bool(r["ignore_until_escalating"]),
            "escalating_forecast": list(r["escalating_forecast"] or []),
        }
    unseen = [f for f in fingerprints if f not in out]
    if unseen:
        for fp, status, assignee, until, until_n, baseline, next_rel, rel, escalating, forecast in client.query(
            "SELECT fingerprint, toString(status), assignee, ignore_until, ignore_until_events, ignore_events_baseline,"
            f" resolved_in_next_release, resolved_releases, ignore_until_escalating, escalating_forecast"
            f" FROM {db}.issue_status FINAL WHERE fingerprint IN {{fps:Array(String)}}", parameters={"fps": unseen},
        ).result_rows:
            out[fp] = {"status": status, "assignee": assignee, "ignore_until": until, "ignore_until_events": until_n,
                       "ignore_events_baseline": baseline, "resolved_in_next_release": bool(next_rel),
                       "resolved_releases": list(rel), "events": 0, "releases": [], "seen": False,
                       "ignore_until_escalating": bool(escalating), "escalating_forecast": list(forecast)}
    return out


def escalating_history(client: Any, settings: Settings, fingerprints: list[str], now: datetime | None = None
                       ) -> dict[str, dict[str, Any]]:
    """What an issue's escalating forecast is computed from (``detection_rules.escalating.forecast``): its true
    counts in each of the last 168 clock hours, this one included (a merged group's members' too; hours without
    events are 0), and the hour of its first event (None: never seen).

    ``{fingerprint: {"hourly": [168 counts, oldest first], "start_hour": hour index of the first, "first_hour":
    …}}`` for each of ``fingerprints``.
    """
    from reports.merges import ISSUE_OF, MEMBERS_OF, MERGED

    db = settings.clickhouse_database
    now = now or datetime.now(UTC)
    end_hour = int(now.timestamp() // 3600) + 1  # the hour after this one
    start_hour = end_hour - 168
    out: dict[str, dict[str, Any]] = {fp: {"hourly": [0] * 168, "start_hour": start_hour, "first_hour": None}
                                      for fp in fingerprints}
    counts = client.query(
        (f"SELECT {ISSUE_OF} AS issue, intDiv(toUnixTimestamp(e.hour), 3600) AS h, sum(e.events)"
         " FROM (SELECT fingerprint, hour, events FROM {db}.error_counts_1h"
         f" WHERE hour >= {{start:DateTime('UTC')}} AND hour < {{end:DateTime('UTC')}} AND {MEMBERS_OF}) AS e"
         f" LEFT JOIN {MERGED} AS m ON m.fingerprint = e.fingerprint GROUP BY issue, h").replace("{db}", db),
        parameters={"start": datetime.fromtimestamp(start_hour * 3600, UTC).replace(tzinfo=None),
                    "end": datetime.fromtimestamp(end_hour * 3600, UTC).replace(tzinfo=None), "fps": fingerprints},
    ).result_rows
    for issue, hour, n in counts:
        if issue in out and 0 <= int(hour) - start_hour < 168:
            out[issue]["hourly"][int(hour) - start_hour] += int(n)
    firsts = client.query(
        (f"SELECT {ISSUE_OF} AS issue, intDiv(toUnixTimestamp(min(e.first_seen)), 3600)"
         f" FROM (SELECT fingerprint, first_seen FROM {{db}}.error_groups WHERE {MEMBERS_OF}) AS e"
         f" LEFT JOIN {MERGED} AS m ON m.fingerprint = e.fingerprint GROUP BY issue").replace("{db}", db),
        parameters={"fps": fingerprints},
    ).result_rows
    for issue, first in firsts:
        if issue in out:
            out[issue]["first_hour"] = int(first)
    return out
