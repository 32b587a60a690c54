"""Release health for the web app: per service, environment and release over a window, what Sentry's
releases page shows — sessions, crash-free sessions and users, errored sessions, true error counts,
adoption (the release's share of its service's sessions in that environment) and sessions per hour.

Read from the per-minute session states (``session_counts_1m``) merged over the whole window, so a
user seen in several hours counts once (the hourly view ``v_release_health`` sums hourly distinct
counts), and from the true per-release error counts (``error_counts_release_1h``). A release with
errors but no sessions (an SDK without session tracking) is listed with its errors and no rates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

RELEASE_WINDOWS = {"24h": 24, "7d": 24 * 7, "14d": 24 * 14}


def release_window(since: str, now: datetime | None = None) -> tuple[str, datetime, int]:
    """A window of RELEASE_WINDOWS (else 24 h): its name, its start on a whole hour, and its hours."""
    since = since if since in RELEASE_WINDOWS else "24h"
    hours = RELEASE_WINDOWS[since]
    start = ((now or datetime.now(UTC)) - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    return since, start, hours


class ReleaseHealth(BaseModel):
    service: str
    environment: str
    release: str
    sessions: int
    errored_sessions: int
    crashed_sessions: int
    users: int
    crashed_users: int
    errors: int  # true count (not the stored sample)
    crash_free_sessions_pct: float | None  # None: no sessions reported
    crash_free_users_pct: float | None
    adoption_pct: float | None  # share of the service's sessions in this environment
    first_seen: datetime | None  # first and last minute with sessions or errors in the window
    last_seen: datetime | None
    sessions_per_hour: list[int]  # oldest first, one per hour of the window


SESSIONS_SQL = """
SELECT service, environment, release, sum(started) AS sessions,
       least(sum(errored) + uniqCombinedMerge(12)(errored_sessions), sessions) AS errored_sessions,
       least(sum(crashed) + uniqCombinedMerge(12)(crashed_sessions), sessions) AS crashed_sessions,
       uniqCombinedMerge(12)(users) AS users, uniqCombinedMerge(12)(crashed_users) AS crashed_users,
       min(minute) AS first_seen, max(minute) AS last_seen,
       groupArray((toUInt32(intDiv(toUnixTimestamp(minute) - toUnixTimestamp({start:DateTime('UTC')}), 3600)),
                   toUInt64(started))) AS per_minute
FROM {db}.session_counts_1m
WHERE minute >= {start:DateTime('UTC')} AND ({service:String} = '' OR service = {service:String})
GROUP BY service, environment, release
"""
ERRORS_SQL = """
SELECT service, environment, release, sum(events) AS errors, min(hour) AS first_seen, max(hour) AS last_seen
FROM {db}.error_counts_release_1h
WHERE hour >= toStartOfHour({start:DateTime('UTC')}) AND ({service:String} = '' OR service = {service:String})
GROUP BY service, environment, release
"""


def release_health(client: Any, database: str, start: datetime, hours: int,
                   service: str | None = None) -> list[ReleaseHealth]:
    """Every release with sessions or errors since ``start`` (``hours`` long), most sessions first."""
    params = {"start": start.replace(tzinfo=None), "service": service or ""}
    sessions = {(r["service"], r["environment"], r["release"]): r for r in client.query(
        SESSIONS_SQL.replace("{db}", database), parameters=params).named_results()}
    errors = {(r["service"], r["environment"], r["release"]): r for r in client.query(
        ERRORS_SQL.replace("{db}", database), parameters=params).named_results()}
    totals: dict[tuple[str, str], int] = {}
    for (svc, env, _), r in sessions.items():
        totals[(svc, env)] = totals.get((svc, env), 0) + int(r["sessions"])
    out = []
    for key in sessions.keys() | errors.keys():
        s, e = sessions.get(key) or {}, errors.get(key) or {}
        n, users = int(s.get("sessions") or 0), int(s.get("users") or 0)
        crashed, crashed_users = int(s.get("crashed_sessions") or 0), int(s.get("crashed_users") or 0)
        per_hour = [0] * max(hours, 1)
        for slot, started in s.get("per_minute") or []:
            if 0 <= slot < len(per_hour):
                per_hour[slot] += int(started)
        seen = [t if t.tzinfo else t.replace(tzinfo=UTC)
                for t in (s.get("first_seen"), s.get("last_seen"), e.get("first_seen"), e.get("last_seen")) if t]
        total = totals.get(key[:2], 0)
        out.append(ReleaseHealth(
            service=key[0], environment=key[1], release=key[2], sessions=n,
            errored_sessions=int(s.get("errored_sessions") or 0), crashed_sessions=crashed, users=users,
            crashed_users=crashed_users, errors=int(e.get("errors") or 0),
            crash_free_sessions_pct=round(100 * (1 - crashed / n), 2) if n else None,
            crash_free_users_pct=round(100 * (1 - crashed_users / users), 2) if users else None,
            adoption_pct=round(100 * n / total, 1) if total and n else None,
            first_seen=min(seen) if seen else None, last_seen=max(seen) if seen else None,
            sessions_per_hour=per_hour,
        ))
    out.sort(key=lambda h: (-h.sessions, -h.errors, h.service, h.environment, h.release))
    return out
