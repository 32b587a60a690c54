"""The overview's report, computed at most every few seconds and shared by every viewer.

Its report (counts, top issues, timeline, per service, release health, recovery, spikes, chains) and its new
issues take a dozen aggregate queries, the same for everyone who opens the page, and the counts change by a few
events a second: recomputing them on every request made the overview the slowest page (Sentry's stats pages
are cached the same way). A computed overview is served as it is while it is younger than
``web_overview_refresh_seconds`` (10 s by default); an older one is still served, while one background thread
recomputes it, until it is ``web_overview_max_age_seconds`` old (60 s); older than that (after an idle minute),
the request recomputes it and waits. Its counts stay exact: they are the aggregates as of the report's
``window_end``, which the page shows ("as of"). ``web_overview_refresh_seconds=0`` recomputes on every request.

The issue stream, its live refresh and the issue pages are never cached.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from reports.issue_queries.models import IssueFilter, IssueSummary
from reports.issue_queries.queries import IssueQueries
from reports.pools import pool
from reports.report import Report, build_report, report_window

log = logging.getLogger("errstream.web")
T = TypeVar("T")
Key = tuple[str, str | None]  # (window, service)
MAX_KEYS = 32  # windows and services asked for recently; the least recently asked is forgotten first


class Fresh(Generic[T]):
    """Values per key, recomputed at most every ``refresh_s`` seconds and never served older than ``max_age_s``.

    One computation per key at a time: requests that find no usable value wait for the one under way instead of
    starting their own. A value's age counts from the start of its computation.
    """

    def __init__(self, refresh_s: float, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh_s = max(0.0, refresh_s)
        self.max_age_s = max(self.refresh_s, max_age_s)
        self.clock = clock
        self._lock = threading.Lock()
        self._values: OrderedDict[Key, tuple[float, T]] = OrderedDict()
        self._computing: dict[Key, threading.Lock] = {}

    def get(self, key: Key, compute: Callable[[], T]) -> T:
        if self.refresh_s <= 0:
            return compute()
        hit = self._hit(key)
        if hit is not None:
            age = self.clock() - hit[0]
            if age < self.refresh_s:
                return hit[1]
            if age < self.max_age_s:
                self._refresh_in_background(key, compute)
                return hit[1]
        with self._computing_lock(key):  # the one computation of this key; others wait for it here
            hit = self._hit(key)
            if hit is not None and self.clock() - hit[0] < self.refresh_s:
                return hit[1]  # computed while this request waited
            return self._compute(key, compute)

    def _hit(self, key: Key) -> tuple[float, T] | None:
        with self._lock:
            hit = self._values.get(key)
            if hit is not None:
                self._values.move_to_end(key)
            return hit

    def _computing_lock(self, key: Key) -> threading.Lock:
        with self._lock:
            return self._computing.setdefault(key, threading.Lock())

    def _compute(self, key: Key, compute: Callable[[], T]) -> T:
        started = self.clock()
        value = compute()
        with self._lock:
            self._values[key] = (started, value)
            self._values.move_to_end(key)
            while len(self._values) > MAX_KEYS:
                old, _ = self._values.popitem(last=False)
                lock = self._computing.get(old)
                if lock is not None and not lock.locked():
                    del self._computing[old]
        return value

    def _refresh_in_background(self, key: Key, compute: Callable[[], T]) -> None:
        lock = self._computing_lock(key)
        if not lock.acquire(blocking=False):
            return  # already being recomputed

        def run() -> None:
            try:
                self._compute(key, compute)
            except Exception as exc:  # ClickHouse away: the next request past max_age_s recomputes and reports it
                log.warning("web: could not recompute the overview: %s", exc or type(exc).__name__)
            finally:
                lock.release()

        pool("overview-refresh").submit(run)


@dataclass(frozen=True)
class Overview:
    report: Report
    new_issues: list[IssueSummary]  # the ten issues first seen last in the window, newest first


def overview(cache: Fresh[Any], client: Any, database: str, since: str, service: str | None) -> Overview:
    """The overview of the window ``since`` (and ``service``), as of at most the cache's refresh interval ago."""

    def compute() -> Overview:
        now = datetime.now(UTC)
        start, _ = report_window(since, now)
        new = pool("overview-new-issues").submit(  # beside the report's queries
            IssueQueries(client, database).list_issues, IssueFilter(service=service, first_seen_from=start),
            "first_seen", None, 10)
        report = build_report(client, database, since, service, now=now)
        return Overview(report, new.result().issues)

    found: Overview = cache.get((since, service), compute)
    return found
