"""Auto-resolve: an open issue that has not been seen for a while is resolved, as Sentry does.

Every ``ERRSTREAM_AUTO_RESOLVE_INTERVAL_SECONDS`` the notify process asks ClickHouse (``v_error_groups``) for
open issues (new, acknowledged, investigating or regressed; never ignored) whose last event is older than
their services' wait: ``ERRSTREAM_AUTO_RESOLVE_SERVICE_MINUTES`` per service, else
``ERRSTREAM_AUTO_RESOLVE_MINUTES`` (0, the default, is off). An issue of several services waits for the
longest of them, and one service set to 0 keeps it open. Each is resolved by publishing a status change on
the issue-status topic, ``changed_by`` ``errstream:auto-resolve`` and ``action`` ``auto_resolve``, the same
path ``errstream issue resolve`` takes: notify stores it in ``issue_status_history`` and detection then
raises a ``regression`` when the issue comes back. Its time to resolution counts as auto-resolved, not
manual, in the recovery times (``v_recovery_times``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from schemas.issue_status import AUTO_RESOLVER, IssueStatusChange
from sinks.clickhouse.client import connect
from sinks.derived_alerts.periodic import publish_periodically

log = logging.getLogger("errstream.auto_resolve")

QUERY = """
SELECT fingerprint, services, last_seen
FROM {db}.v_error_groups
WHERE is_open AND last_seen <= now() - toIntervalMinute({{after:UInt32}})
ORDER BY last_seen
LIMIT 1000
"""


def wait_minutes(settings: Settings, services: list[str]) -> int:
    """Minutes an issue of these services must be quiet before it is resolved; 0 = never."""
    waits = [settings.auto_resolve_service_minutes.get(s, settings.auto_resolve_minutes) for s in services or [""]]
    return 0 if 0 in waits else max(waits)


def due(settings: Settings, rows: list[tuple[Any, ...]], now: datetime) -> list[IssueStatusChange]:
    changes = []
    for fingerprint, services, last_seen in rows:
        wait = wait_minutes(settings, list(services))
        seen = last_seen.replace(tzinfo=UTC) if last_seen.tzinfo is None else last_seen
        if wait and seen <= now - timedelta(minutes=wait):
            changes.append(IssueStatusChange(
                fingerprint=fingerprint, status="resolved", changed_at=now, changed_by=AUTO_RESOLVER,
                action="auto_resolve", note=f"not seen for {wait} min (last seen {seen:%Y-%m-%d %H:%M:%S} UTC)"))
    return changes


class AutoResolver:
    """A periodic task of ``errstream notify``; publishes status changes, stores nothing itself."""

    name = "auto_resolve"

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client
        self.published: set[tuple[str, str]] = set()  # (fingerprint, last seen note): no republishing each round

    def enabled(self) -> bool:
        s = self.settings
        return bool(s.auto_resolve_minutes or any(s.auto_resolve_service_minutes.values()))

    async def scan(self, now: datetime | None = None) -> list[IssueStatusChange]:
        s = self.settings
        if self.client is None:
            self.client = await asyncio.to_thread(connect, s, autogenerate_session_id=False)
        waits = [m for m in (s.auto_resolve_minutes, *s.auto_resolve_service_minutes.values()) if m]
        if not waits:
            return []
        sql = QUERY.format(db=s.clickhouse_database)
        result = await asyncio.to_thread(self.client.query, sql, parameters={"after": min(waits)})
        found = due(s, [tuple(r) for r in result.result_rows], now or datetime.now(UTC))
        return [c for c in found if (c.fingerprint, c.note) not in self.published]

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        if not self.enabled():
            await stop.wait()
            return

        def sent(change: IssueStatusChange) -> None:
            self.published.add((change.fingerprint, change.note))
            log.info("auto-resolved %s (%s)", change.fingerprint, change.note)

        await publish_periodically(s, stop, "auto-resolve", s.auto_resolve_interval_seconds, s.topic_issue_status,
                                   self.scan, lambda change: change.fingerprint.encode(), sent, log)
