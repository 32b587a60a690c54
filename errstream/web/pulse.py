"""A heartbeat of new events for open pages: one cheap ClickHouse query for all of them, only while someone listens.

The issue stream updates itself (counts in place, a "new events" bar): each open stream page would
otherwise have to poll its own query. Instead the app asks ClickHouse every ``PULSE_SECONDS``, only while
at least one live stream is open, how many events the last 24 hours hold (the hourly counts per service
and level: a few hundred rows), and when that changed sends a ``tick`` to every open page; a page then
fetches its own filtered first page once. Quiet systems cost one small query per interval and no page requests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool

from errstream.web.live import AlertFeed

log = logging.getLogger("errstream.web")
PULSE_SECONDS = 0.5  # half a second of the 2 s a new issue may take to reach an open page (issue 26)
PULSE_SQL = ("SELECT toUInt64(sum(events)) FROM {db}.error_service_counts_1h"
             " WHERE hour >= toStartOfHour(now()) - INTERVAL 23 HOUR")


class Pulse:
    def __init__(self, feed: AlertFeed, client: Any, database: str, interval: float = PULSE_SECONDS) -> None:
        self.feed = feed
        self.client = client  # a callable returning the ClickHouse client (connected on first use)
        self.database = database
        self.interval = interval
        self.last: int | None = None
        self.queries = 0

    def _events_24h(self) -> int:
        self.queries += 1
        rows = self.client().query(PULSE_SQL.replace("{db}", self.database)).result_rows
        return int(rows[0][0] or 0) if rows else 0

    async def run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.interval)
            if not self.feed.subscribers:
                self.last = None  # the next listener starts from a fresh value
                continue
            try:
                n = await run_in_threadpool(self._events_24h)
            except Exception as exc:  # ClickHouse down: pages keep their last counts; said once
                if not failing:
                    log.warning("web: live counts paused, ClickHouse did not answer: %s", str(exc).splitlines()[0][:200])
                failing = True
                continue
            failing = False
            if self.last is not None and n != self.last:
                self.feed.publish({"events_24h": n, "change": n - self.last}, kind="tick")
            self.last = n
