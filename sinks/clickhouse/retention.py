"""Keep the tables' TTL in line with ``ERRSTREAM_EVENTS_TTL_DAYS``.

Migrations run once, so the retention chosen when the schema was created would
otherwise stick forever. Each ``migrate`` compares the TTL in force with the
setting and changes it with ``ALTER TABLE … MODIFY TTL`` when they differ.
Aggregated counts and issues keep at least 400 days (year-over-year questions
stay answerable from counts after raw events are gone).
"""

from __future__ import annotations

import re

from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from sinks.clickhouse.cluster_ddl import local_table

# table → (TTL expression without the interval, minimum days)
TTL_TABLES: dict[str, tuple[str, int]] = {
    "error_events": ("toDateTime(timestamp)", 1),
    "error_tag_counts": ("day", 1),  # counts of the stored events: they go with them
    "error_latest_events": ("toDateTime(last_at)", 1),  # a stored event's content: it goes with the events
    "error_issue_messages": ("toDateTime(last_at)", 1),  # stored messages: they go with the events
    "error_issue_event_ends": ("day", 1),  # the stored events' first and last per day: they go with them
    "error_counts_1m": ("minute", 400),
    "error_counts_1h": ("hour", 400),
    "error_groups": ("toDateTime(last_seen)", 400),
    "error_service_counts_1m": ("minute", 400),  # the same counts rolled up (migration 0020)
    "error_service_counts_1h": ("hour", 400),
    "error_issue_counts_1h": ("hour", 400),
    "error_issue_counts_1d": ("day", 400),
}
_DAYS = re.compile(r"\bTTL\b.*?toIntervalDay\((\d+)\)|\bTTL\b.*?INTERVAL\s+(\d+)\s+DAY", re.IGNORECASE | re.DOTALL)


def ttl_days_in_force(client: Client, db: str, table: str) -> int | None:
    return _ttl_days(client, db, [table]).get(table)


def _ttl_days(client: Client, db: str, tables: list[str]) -> dict[str, int | None]:
    """{table: days of its TTL, None without one} of those of ``tables`` that exist: one query for all."""
    rows = client.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = {db:String} "
        "AND name IN {t:Array(String)}",
        parameters={"db": db, "t": tables},
    ).result_rows
    out: dict[str, int | None] = {}
    for name, create in rows:
        m = _DAYS.search(create)
        out[name] = int(m.group(1) or m.group(2)) if m else None
    return out


def apply_retention(settings: Settings, client: Client) -> dict[str, int]:
    """Change TTLs that differ from the settings; return {table: new days} for those changed."""
    db = settings.clickhouse_database
    changed: dict[str, int] = {}
    stored_as = {table: local_table(settings, table) for table in TTL_TABLES}  # cluster mode: T_local
    in_force = _ttl_days(client, db, list(stored_as.values()))
    for table, (expr, minimum) in TTL_TABLES.items():
        want = max(settings.events_ttl_days, minimum)
        stored = stored_as[table]
        have = in_force.get(stored)
        if have is not None and have != want:
            on = f" ON CLUSTER {settings.clickhouse_cluster}" if settings.clickhouse_cluster else ""
            client.command(f"ALTER TABLE {db}.{stored}{on} MODIFY TTL {expr} + INTERVAL {want} DAY")
            changed[table] = want
    return changed
