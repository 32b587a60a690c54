"""Reading issues back from ClickHouse: the latest status, its history, the issues whose status changed.

An issue with no recorded change is ``new``; a resolved issue seen again since its resolution is ``regressed``
(the same rule as the ``v_error_groups`` view, sinks/migrations/0006). The CLI (``errstream issue``) and the web
app read through here.
"""

from __future__ import annotations

from typing import Any

from errstream_core.settings import Settings

# The status people see: recorded status, except a resolved issue whose last event is newer than the resolution.
_SHOWN_STATUS = ("if(toString(s.status) = 'resolved' AND g.last_seen > s.changed_at, 'regressed', "
                 "toString(s.status))")


def _last_seen(db: str, where: str) -> str:
    return (f"LEFT JOIN (SELECT fingerprint, max(last_seen) AS last_seen FROM {db}.error_groups "
            f"WHERE {where} GROUP BY fingerprint) AS g ON g.fingerprint = s.fingerprint")


def latest_status(client: Any, settings: Settings, fingerprint: str) -> dict[str, Any] | None:
    db = settings.clickhouse_database
    rows = client.query(
        f"SELECT {_SHOWN_STATUS}, s.changed_at, s.changed_by, s.note, g.last_seen "
        f"FROM (SELECT * FROM {db}.issue_status FINAL WHERE fingerprint = {{fp:String}}) AS s "
        + _last_seen(db, "fingerprint = {fp:String}"), parameters={"fp": fingerprint},
    ).result_rows
    if not rows:
        return None
    status, changed_at, changed_by, note, last_seen = rows[0]
    return {"status": status, "changed_at": changed_at, "changed_by": changed_by, "note": note,
            "last_seen": last_seen}


def status_history(client: Any, settings: Settings, fingerprint: str) -> list[tuple[Any, ...]]:
    return list(client.query(
        f"SELECT changed_at, toString(status), changed_by, note FROM {settings.clickhouse_database}"
        ".issue_status_history FINAL WHERE fingerprint = {fp:String} ORDER BY changed_at",
        parameters={"fp": fingerprint},
    ).result_rows)


def list_statuses(client: Any, settings: Settings, statuses: list[str], limit: int) -> list[tuple[Any, ...]]:
    db = settings.clickhouse_database
    where = "WHERE shown_status IN {st:Array(String)}" if statuses else ""
    return list(client.query(
        f"SELECT s.fingerprint, {_SHOWN_STATUS} AS shown_status, s.changed_at, s.changed_by, s.note, "
        "ifNull(t.title, '') "
        f"FROM (SELECT * FROM {db}.issue_status FINAL) AS s "
        + _last_seen(db, f"fingerprint IN (SELECT fingerprint FROM {db}.issue_status)") + " "
        f"LEFT JOIN (SELECT fingerprint, any(title) AS title FROM {db}.error_events "
        f"  WHERE fingerprint IN (SELECT fingerprint FROM {db}.issue_status) GROUP BY fingerprint) AS t "
        f"  ON s.fingerprint = t.fingerprint {where} ORDER BY s.changed_at DESC LIMIT {{n:UInt32}}",
        parameters={"st": statuses, "n": limit},
    ).result_rows)


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
