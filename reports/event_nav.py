"""Walking an issue's stored events: the oldest, the one before, the one after and the latest of an event.

What a triage engineer does on Sentry's issue page (compare this event with the one before it), read
from ``error_events`` for one issue (its merged members' events too). The order is the issue's event
list's: newest first by time, then by event id, so "older" is the next row of that list and walking
with "older" from the latest visits every stored event once. One scan of the issue's key columns, on
its own part of the primary key (service, fingerprint).
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
# One scan of the issue's key columns: its distinct (time, id) pairs in the list's order (newest first, then id),
# the event's place in it, and its neighbours by place. Reading a busy issue's 100 k ids is a few milliseconds;
# six lookups, each with its own filter and sort, took up to a second on a loaded machine.
NAV_SQL = f"""
SELECT l[1].2 AS latest, if(i > 1, l[i - 1].2, NULL) AS newer, if(i > 0 AND i < length(l), l[i + 1].2, NULL) AS older,
       l[-1].2 AS oldest, toInt64(i) - 1 AS newer_count, length(l) AS stored
FROM (SELECT arraySort(x -> (-x.1, x.2), groupUniqArray((toUnixTimestamp64Milli(timestamp), toString(event_id)))) AS l,
             indexOf(arrayMap(x -> x.2, l), {{e:String}}) AS i
      FROM {{db}}.error_events WHERE {_OF_ISSUE})
"""


def event_nav(client: Any, database: str, issue: str, event_id: str) -> EventNav:
    """The neighbours of ``event_id`` among the stored events of ``issue``."""
    rows = list(client.query(NAV_SQL.replace("{db}", database),
                             parameters={"fps": [issue], "e": event_id}).named_results())
    r = rows[0] if rows and rows[0]["stored"] else None
    if r is None:
        return EventNav(issue=issue, latest=None, newer=None, older=None, oldest=None, newer_count=0, stored=0)
    return EventNav(issue=issue, latest=r["latest"], newer=r["newer"], older=r["older"], oldest=r["oldest"],
                    newer_count=max(int(r["newer_count"]), 0), stored=int(r["stored"]))
