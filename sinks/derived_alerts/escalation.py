"""Escalation: an issue nobody acknowledged that keeps occurring raises a louder alert, once per level.

Every ``escalation_interval_seconds`` the notify process asks ClickHouse (``v_error_groups``) for open
issues whose status is still ``new`` (or that regressed after a resolution, or came back from an archive
as ``escalating``), that occurred within the
last ``escalation_active_minutes``, and that have been waiting longer than a level of
``escalation_after_minutes`` (for example ``[60, 240]``: an hour, then four). Each such (issue, level)
gets one ``escalation`` alert on the alerts topic: ``error`` at the first level, ``critical`` after.
Acknowledging, investigating, resolving or ignoring the issue stops it, because the query no longer
finds it.

"Once per level" holds across restarts and several notify processes: the alert id is derived from
(issue, level, the status change it escalates from), so a repeat is the same alert, stored and
delivered once by the alerts sink. Destinations choose escalations with ``kinds: ["escalation"]``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from schemas.alerts import AlertEvent, alert_id
from sinks.clickhouse.client import connect
from sinks.derived_alerts.periodic import publish_alerts_periodically

log = logging.getLogger("errstream.escalation")

QUERY = """
SELECT fingerprint, title, culprit, services, events, users, first_seen, last_seen, status,
       ifNull(status_changed_at, first_seen) AS waiting_since
FROM {db}.v_error_groups
WHERE is_open AND status IN ('new', 'resolved', 'regressed', 'escalating')
  AND last_seen >= now() - toIntervalMinute({{active:UInt32}})
  AND ifNull(status_changed_at, first_seen) <= now() - toIntervalMinute({{after:UInt32}})
ORDER BY last_seen DESC
LIMIT 1000
"""


def escalation_alert(row: tuple[Any, ...], level: int, after_minutes: int) -> AlertEvent:
    fingerprint, title, culprit, services, events, users, first_seen, last_seen, status, since = row
    service = services[0] if services else "unknown"
    waited = {"new": "unacknowledged", "escalating": "escalating and unacknowledged"}.get(
        status, "regressed and unacknowledged")
    return AlertEvent(
        alert_id=alert_id("escalation", fingerprint, level, since.isoformat()),
        kind="escalation", severity="error" if level == 1 else "critical",
        dedup_key=f"escalation:{fingerprint}:{level}", created_at=datetime.now(UTC), service=service,
        fingerprint=fingerprint, title=title,
        message=(f"{title} is {waited} after {after_minutes} min and still occurring: {events:,} events, "
                 f"{users:,} users, last seen {last_seen:%Y-%m-%d %H:%M:%S} UTC"),
        details={"level": level, "after_minutes": after_minutes, "events": int(events), "users": int(users),
                 "culprit": culprit, "waiting_since": since.isoformat()},
    )


class Escalator:
    """A periodic task of ``errstream notify``; publishes escalation alerts, stores nothing itself."""

    name = "escalation"

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client
        self.published: set[Any] = set()  # alert ids this process sent: no republishing every round

    async def scan(self) -> list[AlertEvent]:
        s = self.settings
        if self.client is None:
            self.client = await asyncio.to_thread(connect, s, autogenerate_session_id=False)
        client = self.client
        found: list[AlertEvent] = []
        sql = QUERY.format(db=s.clickhouse_database)
        for level, after in enumerate(sorted(s.escalation_after_minutes), start=1):
            parameters = {"active": s.escalation_active_minutes, "after": after}
            result = await asyncio.to_thread(client.query, sql, parameters=parameters)
            rows = result.result_rows
            found.extend(escalation_alert(tuple(r), level, after) for r in rows)
        return [a for a in found if a.alert_id not in self.published]

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        if not s.escalation_after_minutes:
            await stop.wait()
            return
        await publish_alerts_periodically(s, stop, "escalation", s.escalation_interval_seconds, self.scan,
                                          self.published, log)
