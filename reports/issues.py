"""Reading issues back from ClickHouse: the latest status, its history, the issues whose status changed.

An issue with no recorded change is ``new``. The CLI (``errstream issue``) and the web app read through here.
"""

from __future__ import annotations

from typing import Any

from errstream_core.settings import Settings


def latest_status(client: Any, settings: Settings, fingerprint: str) -> dict[str, Any] | None:
    rows = client.query(
        f"SELECT toString(status), changed_at, changed_by, note FROM {settings.clickhouse_database}.issue_status "
        "FINAL WHERE fingerprint = {fp:String}", parameters={"fp": fingerprint},
    ).result_rows
    if not rows:
        return None
    status, changed_at, changed_by, note = rows[0]
    return {"status": status, "changed_at": changed_at, "changed_by": changed_by, "note": note}


def status_history(client: Any, settings: Settings, fingerprint: str) -> list[tuple[Any, ...]]:
    return list(client.query(
        f"SELECT changed_at, toString(status), changed_by, note FROM {settings.clickhouse_database}"
        ".issue_status_history FINAL WHERE fingerprint = {fp:String} ORDER BY changed_at",
        parameters={"fp": fingerprint},
    ).result_rows)


def list_statuses(client: Any, settings: Settings, statuses: list[str], limit: int) -> list[tuple[Any, ...]]:
    db = settings.clickhouse_database
    where = "WHERE toString(s.status) IN {st:Array(String)}" if statuses else ""
    return list(client.query(
        f"SELECT s.fingerprint, toString(s.status), s.changed_at, s.changed_by, s.note, ifNull(t.title, '') "
        f"FROM (SELECT * FROM {db}.issue_status FINAL) AS s "
        f"LEFT JOIN (SELECT fingerprint, any(title) AS title FROM {db}.error_events "
        f"  WHERE fingerprint IN (SELECT fingerprint FROM {db}.issue_status) GROUP BY fingerprint) AS t "
        f"  ON s.fingerprint = t.fingerprint {where} ORDER BY s.changed_at DESC LIMIT {{n:UInt32}}",
        parameters={"st": statuses, "n": limit},
    ).result_rows)


def workflow_state(client: Any, settings: Settings, fingerprints: list[str]) -> dict[str, dict[str, Any]]:
    """The latest workflow record of each issue plus its true event count and releases.

    A change must carry the issue's whole state (the status topic is compacted), so the
    web app and ``errstream issue assign`` read it here before publishing. Issues with no
    recorded change are absent from ``issue_status`` and come back with status ``new``.
    """
    db = settings.clickhouse_database
    rows = client.query(
        "SELECT if(g.fingerprint != '', g.fingerprint, s.fingerprint), toString(s.status), s.assignee, s.note, s.ignore_until, s.ignore_until_events,"
        " s.ignore_events_baseline, s.resolved_in_next_release, s.resolved_releases, g.events, g.releases,"
        " s.fingerprint != '', g.fingerprint != ''"
        f" FROM (SELECT fingerprint, sum(events) AS events, arraySort(groupUniqArrayArray(releases)) AS releases"
        f"   FROM {db}.error_groups WHERE fingerprint IN {{fps:Array(String)}} GROUP BY fingerprint) AS g"
        f" FULL OUTER JOIN (SELECT * FROM {db}.issue_status FINAL WHERE fingerprint IN {{fps:Array(String)}}) AS s"
        "   ON s.fingerprint = g.fingerprint",
        parameters={"fps": fingerprints},
    ).result_rows
    out: dict[str, dict[str, Any]] = {}
    for fp, status, assignee, note, until, until_n, baseline, next_rel, rel_rel, events, releases, recorded, seen in rows:
        out[fp] = {
            "status": status if recorded else "new", "assignee": assignee or "", "note": note or "",
            "ignore_until": until, "ignore_until_events": until_n, "ignore_events_baseline": baseline,
            "resolved_in_next_release": bool(next_rel), "resolved_releases": list(rel_rel or []),
            "events": int(events or 0), "releases": list(releases or []), "seen": bool(seen),
        }
    return out
