"""Walking an issue's stored events: the oldest, the one before, the one after and the latest of an event.

What a triage engineer does on Sentry's issue page (compare this event with the one before it), read
from ``error_events`` for one issue (its merged members' events too). The order is the issue's event
list's: newest first by time, then by event id, so "older" is the next row of that list and walking
with "older" from the latest visits every stored event once. Four one-row lookups in one query, each on
the issue's own part of the primary key (service, fingerprint).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from reports.merges import MEMBERS_OF


class EventNav(BaseModel):
    """Event ids of the neighbours of one event in its issue (None where there is none)."""

    issue: str  # the issue (its primary when merged)
    latest: str | None
    newer: str | None
    older: str | None
    oldest: str | None
    newer_count: int  # stored events newer than this one: this is event newer_count + 1 of stored, newest first
    stored: int


_OF_ISSUE = (f"service IN (SELECT arrayJoin(services) FROM {{db}}.error_groups WHERE {MEMBERS_OF})"
             f" AND {MEMBERS_OF}")
_MS = "toUnixTimestamp64Milli(timestamp)"
_NEWER = f"({_MS} > {{t:Int64}} OR ({_MS} = {{t:Int64}} AND toString(event_id) < {{e:String}}))"
_OLDER = f"({_MS} < {{t:Int64}} OR ({_MS} = {{t:Int64}} AND toString(event_id) > {{e:String}}))"
_NEWEST_FIRST = "ORDER BY timestamp DESC, toString(event_id) ASC"
_OLDEST_FIRST = "ORDER BY timestamp ASC, toString(event_id) DESC"


def _one(which: str, where: str, order: str) -> str:
    return (f"SELECT '{which}' AS which, toString(event_id) AS event_id FROM (SELECT event_id, timestamp"
            f" FROM {{db}}.error_events WHERE {_OF_ISSUE} AND {where} {order} LIMIT 1)")


NAV_SQL = " UNION ALL ".join([
    _one("latest", "1", _NEWEST_FIRST), _one("newer", _NEWER, _OLDEST_FIRST),
    _one("older", _OLDER, _NEWEST_FIRST), _one("oldest", "1", _OLDEST_FIRST),
    f"SELECT 'newer_count' AS which, toString(uniqExactIf(event_id, {_NEWER})) FROM {{db}}.error_events"
    f" WHERE {_OF_ISSUE}",
    f"SELECT 'stored' AS which, toString(uniqExact(event_id)) FROM {{db}}.error_events WHERE {_OF_ISSUE}",
])


def event_nav(client: Any, database: str, issue: str, event_id: str, timestamp_ms: int) -> EventNav:
    """The neighbours of ``event_id`` (stored at ``timestamp_ms``) among the stored events of ``issue``."""
    got = {which: value for which, value in client.query(
        NAV_SQL.replace("{db}", database), parameters={"fps": [issue], "t": timestamp_ms, "e": event_id},
    ).result_rows}
    return EventNav(issue=issue, latest=got.get("latest"), newer=got.get("newer"), older=got.get("older"),
                    oldest=got.get("oldest"), newer_count=int(got.get("newer_count") or 0),
                    stored=int(got.get("stored") or 0))
