"""``IssueQueries``: the queries behind the web app's issue stream, issue page and event page."""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from reports.issue_queries.cursor import decode_cursor, encode_cursor, naive, ts, utc
from reports.issue_queries.models import (
    LEVELS,
    MAX_LIMIT,
    OPEN_STATUSES,
    SORTS,
    STATUSES,
    AlertRow,
    BadQuery,
    ChainEvent,
    ChainRow,
    EventDetail,
    EventPage,
    EventSummary,
    ExceptionRow,
    Frame,
    IssueDetail,
    IssueFilter,
    IssuePage,
    IssueSummary,
    MergeRow,
    StatusChangeRow,
    TagValue,
)
from reports.issue_queries.sql import OF_ISSUE, PAGE_STATE_SQL, SORT_KEY, STATE_SQL
from reports.merges import ISSUE_OF, MEMBERS_OF, MERGE_HISTORY_SQL, MERGED
from reports.pools import pool
from reports.recovery import IssueRecovery, RecoveryQueries
from schemas.limits import MIN_TIMESTAMP


def _pool() -> ThreadPoolExecutor:
    return pool("issue-queries")


class IssueQueries:
    """The queries behind the web app's issue stream, issue page and event page."""

    def __init__(self, client: Any, database: str, now: datetime | None = None) -> None:
        self.client = client
        self.db = database
        self.now = utc(now) if now else None

    def _rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return list(self.client.query(sql.replace("{db}", self.db), parameters=params).named_results())

    def _now(self) -> datetime:
        return self.now or datetime.now(UTC)

    # --- the stream ---------------------------------------------------------------------------
    def list_issues(self, f: IssueFilter, sort: str = "last_seen", cursor: str | None = None,
                    limit: int = 25) -> IssuePage:
        if sort not in SORTS:
            raise BadQuery(f"sort must be one of {', '.join(SORTS)}")
        limit = max(1, min(limit, MAX_LIMIT))
        where, params = self._where(f)
        trend_join = ""
        if sort == "trend":
            trend_join = (
                f" LEFT JOIN (SELECT {ISSUE_OF} AS issue,"
                " sumIf(e.events, e.hour >= toStartOfHour(now() - INTERVAL 23 HOUR))"
                " - sumIf(e.events, e.hour < toStartOfHour(now() - INTERVAL 23 HOUR)) AS trend"
                " FROM (SELECT fingerprint, hour, events FROM {db}.error_issue_counts_1h"
                " WHERE hour >= toStartOfHour(now() - INTERVAL 47 HOUR)) AS e"
                f" LEFT JOIN {MERGED} AS m ON m.fingerprint = e.fingerprint"
                " GROUP BY issue) AS t ON t.issue = i.fingerprint"
            )
        key = SORT_KEY[sort]
        if cursor:
            c = decode_cursor(cursor)
            if c.get("s") != sort or not isinstance(c.get("k"), int) or not isinstance(c.get("f"), str):
                raise BadQuery("cursor belongs to another sort or is not one this API returned")
            where.append(f"({key} < {{ck:Int64}} OR ({key} = {{ck:Int64}} AND i.fingerprint > {{cf:String}}))")
            params.update(ck=c["k"], cf=c["f"])
        # Rank first, reading only what the filters and the sort need (unused columns of the view, such as the
        # user-set merges, are not computed); then the page's full rows and its counts, at once.
        sql = (
            f"SELECT i.fingerprint AS fingerprint, {key} AS sort_key FROM ({STATE_SQL.replace('{only}', '')}) AS i"
            + trend_join + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY sort_key DESC, i.fingerprint ASC LIMIT {lim:UInt32}"
        )
        ranked = self._rows(sql, **params, lim=limit + 1)
        more = len(ranked) > limit
        ranked = ranked[:limit]
        fps = [r["fingerprint"] for r in ranked]
        if not fps:
            return IssuePage(issues=[], next_cursor=None)
        pool = _pool()
        counts = pool.submit(self._hourly, fps)
        full = {r["fingerprint"]: r for r in self._rows(PAGE_STATE_SQL, fps=fps)}
        issues = [self._summary(full[fp]) for fp in fps if fp in full]
        self._fill_counts(issues, counts.result())
        last = ranked[-1]
        nxt = encode_cursor({"s": sort, "k": int(last["sort_key"]), "f": last["fingerprint"]}) if more else None
        return IssuePage(issues=issues, next_cursor=nxt)

    def _where(self, f: IssueFilter) -> tuple[list[str], dict[str, Any]]:
        where: list[str] = []
        params: dict[str, Any] = {}
        if f.service:
            where.append("has(i.services, {service:String})")
            params["service"] = f.service
        if f.environment:
            where.append("has(i.environments, {environment:String})")
            params["environment"] = f.environment
        if f.release:
            where.append("has(i.releases, {release:String})")
            params["release"] = f.release
        if f.level:
            if f.level not in LEVELS:
                raise BadQuery(f"level must be one of {', '.join(LEVELS)}")
            where.append("i.level = {level:String}")
            params["level"] = f.level
        if f.status:
            wanted: set[str] = set()
            for s in f.status:
                if s in ("open", "unresolved"):
                    wanted.update(OPEN_STATUSES)
                elif s in STATUSES:
                    wanted.add(s)
                else:
                    raise BadQuery(f"status must be open or one of {', '.join(STATUSES)}")
            where.append("i.status IN {statuses:Array(String)}")
            params["statuses"] = sorted(wanted)
        if f.assignee:
            where.append("i.assignee = {assignee:String}")
            params["assignee"] = "" if f.assignee == "none" else f.assignee
        for name, column, op in (("first_seen_from", "first_seen", ">="), ("first_seen_to", "first_seen", "<="),
                                 ("last_seen_from", "last_seen", ">="), ("last_seen_to", "last_seen", "<=")):
            value = getattr(f, name)
            if value is not None:
                where.append(f"i.{column} {op} {{{name}:DateTime64(3, 'UTC')}}")
                params[name] = naive(value)
        if f.q:
            where.append(
                "(positionCaseInsensitiveUTF8(i.title, {q:String}) > 0"
                " OR positionCaseInsensitiveUTF8(i.culprit, {q:String}) > 0"
                " OR i.fingerprint = lower({q:String}) OR has(i.members, lower({q:String}))"
                # messages stored in the last 14 days, from each issue's distinct messages (migration 0021): the
                # ngram index keeps the granules that can hold the text, and issues whose own first title (the title
                # the row shows, migration 0015) matches already are left out before any message is read
                " OR i.fingerprint IN (SELECT DISTINCT fingerprint FROM {db}.error_issue_messages"
                "   PREWHERE fingerprint NOT IN (SELECT fingerprint FROM {db}.error_groups GROUP BY fingerprint"
                "     HAVING positionCaseInsensitiveUTF8(argMinMerge(first_title), {q:String}) > 0)"
                "   WHERE last_at >= now() - INTERVAL 14 DAY"
                "   AND lowerUTF8(message) LIKE concat('%', lowerUTF8({q_like:String}), '%')))"
            )
            params["q"] = f.q
            params["q_like"] = re.sub(r"([\\%_])", r"\\\1", f.q)  # LIKE's own characters, literally
        return where, params

    @staticmethod
    def _summary(r: dict[str, Any]) -> IssueSummary:
        return IssueSummary(
            fingerprint=r["fingerprint"], title=r["title"], culprit=r["culprit"], exception_type=r["exception_type"],
            level=r["level"], status=r["status"], assignee=r["assignee"] or "", services=list(r["services"]),
            environments=list(r["environments"]), releases=[x for x in r["releases"] if x],
            first_seen=ts(r["first_seen"]), last_seen=ts(r["last_seen"]),
            events=int(r["events"]), users=int(r["users"]), members=list(r["members"]),
        )

    def _hourly(self, fingerprints: list[str]) -> tuple[dict[str, dict[datetime, int]], dict[str, dict[datetime, int]]]:
        """True counts of these issues per hour over the last 24 hours and per day over the last 14 days.

        From the per-issue counts kept at insert (migration 0020), each ordered by its time first: the last 24
        hours of ``error_issue_counts_1h`` and 14 days of ``error_issue_counts_1d`` are at most a row per issue
        and hour or day, whatever the number of events (14 days of ``error_counts_1h`` grew with them).
        """
        now_hour = self._now().replace(minute=0, second=0, microsecond=0)
        first_day = now_hour.replace(hour=0) - timedelta(days=13)
        merged = f" LEFT JOIN {MERGED} AS m ON m.fingerprint = e.fingerprint GROUP BY issue, t"
        rows = self.client.query(
            (f"SELECT 'h' AS kind, {ISSUE_OF} AS issue, e.hour AS t, sum(e.events) FROM (SELECT fingerprint, hour, events"
             f" FROM {{db}}.error_issue_counts_1h WHERE hour >= {{start_hour:DateTime('UTC')}} AND {MEMBERS_OF}) AS e"
             + merged + " UNION ALL "
             f"SELECT 'd' AS kind, {ISSUE_OF} AS issue, toDateTime(e.day, 'UTC') AS t, sum(e.events) FROM (SELECT"
             f" fingerprint, day, events FROM {{db}}.error_issue_counts_1d WHERE day >= {{start_day:Date}}"
             f" AND {MEMBERS_OF}) AS e" + merged).replace("{db}", self.db),
            parameters={"start_hour": naive(now_hour - timedelta(hours=23)), "start_day": first_day.date(),
                        "fps": fingerprints},
        ).result_rows
        hourly: dict[str, dict[datetime, int]] = {}
        daily: dict[str, dict[datetime, int]] = {}
        for kind, fp, t, n in rows:
            (hourly if kind == "h" else daily).setdefault(fp, {})[ts(t)] = int(n)
        return hourly, daily

    def _fill_counts(self, issues: list[IssueSummary],
                     counts: tuple[dict[str, dict[datetime, int]], dict[str, dict[datetime, int]]]) -> None:
        hourly, daily = counts
        now_hour = self._now().replace(minute=0, second=0, microsecond=0)
        first_day = now_hour.replace(hour=0) - timedelta(days=13)
        for issue in issues:
            cells = hourly.get(issue.fingerprint, {})
            issue.series_24h = [cells.get(now_hour - timedelta(hours=23 - k), 0) for k in range(24)]
            days = daily.get(issue.fingerprint, {})
            issue.series_14d = [days.get(first_day + timedelta(days=k), 0) for k in range(14)]
            issue.events_24h = sum(issue.series_24h)
            issue.events_14d = sum(issue.series_14d)

    # --- one issue ----------------------------------------------------------------------------
    def summary(self, fingerprint: str) -> IssueSummary | None:
        """The issue's row as the stream shows it (one query, no timelines): for callers that need its type,
        culprit or services only, not the whole issue page."""
        found = self.header(fingerprint)
        return found[0] if found else None

    def header(self, fingerprint: str) -> tuple[IssueSummary, int] | None:
        """The issue's row and how many of its events are stored (one query): for pages that name the issue and
        its counts, not the whole issue page's dozen queries."""
        rows = self._rows(PAGE_STATE_SQL, fps=[self.primary_of(fingerprint)])
        return (self._summary(rows[0]), int(rows[0]["stored"])) if rows else None

    def ends(self, fingerprint: str) -> dict[str, Any]:
        """The issue's first and last release and its latest stored event (``latest``, None without one), from
        the states kept at insert per issue and day (migration 0022), not from every stored event of the issue.
        ``fingerprint`` is the issue's primary (``primary_of``)."""
        rows = self._rows(
            "SELECT argMinMerge(first_release) AS first_release, argMaxMerge(last_release) AS last_release,"
            f" toString(argMaxMerge(latest_event)) AS latest FROM {{db}}.error_issue_event_ends WHERE {MEMBERS_OF}",
            fps=[fingerprint],
        )
        e = dict(rows[0]) if rows else {}
        if e.get("latest") in ("", "00000000-0000-0000-0000-000000000000"):
            e["latest"] = None
        return e

    def issue(self, fingerprint: str, ends: Future[dict[str, Any]] | None = None,
              resolved: bool = False) -> IssueDetail | None:
        """The issue page. Its queries are independent, so they run at once: a ClickHouse server serves them
        in parallel, and even a serialised one (embedded chDB) overlaps their round trips. ``ends``: the
        issue's ``ends`` already under way (the page starts its latest event from it); ``resolved``: the caller
        has already resolved ``fingerprint`` with ``primary_of``."""
        if not resolved:
            fingerprint = self.primary_of(fingerprint)  # a merged fingerprint's page is its group's
        pool = _pool()
        state = pool.submit(self._rows, PAGE_STATE_SQL, fps=[fingerprint])
        counts = pool.submit(self._hourly, [fingerprint])
        if ends is None:
            ends = pool.submit(self.ends, fingerprint)
        history = pool.submit(self.history, fingerprint)
        merges = pool.submit(self.merges, fingerprint)
        tags = pool.submit(self.top_tags, fingerprint)
        alerts = pool.submit(self.alerts, fingerprint, 20)
        chains = pool.submit(self.chains, fingerprint, 10)
        recovery = pool.submit(self.recovery, fingerprint)
        rows = state.result()
        if not rows:
            for f in (counts, ends, history, merges, tags, alerts, chains, recovery):
                f.result()
            return None
        r = rows[0]
        base = self._summary(r)
        self._fill_counts([base], counts.result())
        e = ends.result()
        now_hour = self._now().replace(minute=0, second=0, microsecond=0)
        first_day = now_hour.replace(hour=0) - timedelta(days=13)
        return IssueDetail(
            **base.model_dump(exclude={"releases"}), stored=int(r["stored"]), releases=list(r["releases"]),
            first_release=e.get("first_release") or "", last_release=e.get("last_release") or "",
            raw_status=r["raw_status"], status_changed_at=utc(r["status_changed_at"]),
            ignore_until=utc(r["ignore_until"]), ignore_until_events=r["ignore_until_events"],
            ignore_until_escalating=bool(r["ignore_until_escalating"]),
            escalating_forecast=list(r["escalating_forecast"] or []),
            resolved_in_next_release=bool(r["resolved_in_next_release"]),
            history=history.result(), merges=merges.result(), tags=tags.result(),
            timeline_24h=[(now_hour - timedelta(hours=23 - k), n) for k, n in enumerate(base.series_24h)],
            timeline_14d=[(first_day + timedelta(days=k), n) for k, n in enumerate(base.series_14d)],
            alerts=alerts.result(), chains=chains.result(),
            latest_event_id=e.get("latest"),
            recovery=recovery.result(),
        )

    def recovery(self, fingerprint: str) -> IssueRecovery | None:
        """The issue's recovery counts over everything the tables hold; None when it reported none."""
        return RecoveryQueries(self.client, self.db, MIN_TIMESTAMP, self._now()).by_issue([fingerprint]).get(
            fingerprint)

    def history(self, fingerprint: str) -> list[StatusChangeRow]:
        rows = self._rows(
            "SELECT changed_at, toString(status) AS status, action, changed_by, note, assignee"
            " FROM {db}.issue_status_history FINAL WHERE fingerprint = {fp:String} ORDER BY changed_at",
            fp=fingerprint,
        )
        return [StatusChangeRow(**{**x, "changed_at": utc(x["changed_at"])}) for x in rows]

    def primary_of(self, fingerprint: str) -> str:
        """The issue ``fingerprint`` belongs to: its primary when merged, else itself."""
        rows = self.client.query(
            f"SELECT primary_fingerprint FROM {self.db}.issue_merges FINAL WHERE fingerprint = {{fp:String}}",
            parameters={"fp": fingerprint}).result_rows
        return rows[0][0] if rows and rows[0][0] else fingerprint

    def merges(self, fingerprint: str) -> list[MergeRow]:
        """Every merge and unmerge of the issue and of any fingerprint ever merged into it, oldest first."""
        rows = self._rows(MERGE_HISTORY_SQL, fp=fingerprint)
        return [MergeRow(**{**x, "changed_at": utc(x["changed_at"])}) for x in rows]

    def top_tags(self, fingerprint: str, per_tag: int = 5) -> dict[str, list[TagValue]]:
        """Top values per tag over the issue's stored events; environment, release, server and service too.

        From ``error_tag_counts`` (migration 0016: counted at insert, per tag, value and day), not from the
        events themselves: a busy issue's page no longer reads every stored event's tags.
        """
        rows = self._rows(
            "SELECT k, v, sum(n) AS c FROM {db}.error_tag_counts"
            f" WHERE {MEMBERS_OF}"
            " GROUP BY k, v ORDER BY k, c DESC, v LIMIT {per:UInt32} BY k",
            fps=[fingerprint], per=per_tag,
        )
        out: dict[str, list[TagValue]] = {}
        for x in rows:
            out.setdefault(x["k"], []).append(TagValue(value=x["v"], count=int(x["c"])))
        return out

    def events(self, fingerprint: str, cursor: str | None = None, limit: int = 25, resolved: bool = False) -> EventPage:
        """A page of the issue's stored events, newest first (``resolved``: as in ``issue``)."""
        limit = max(1, min(limit, MAX_LIMIT))
        where = [OF_ISSUE]
        params: dict[str, Any] = {"fps": [fingerprint if resolved else self.primary_of(fingerprint)], "lim": limit + 1}
        if cursor:
            c = decode_cursor(cursor)
            if not isinstance(c.get("t"), int) or not isinstance(c.get("e"), str):
                raise BadQuery("cursor is not one this API returned")
            where.append("(toUnixTimestamp64Milli(timestamp) < {ct:Int64} OR (toUnixTimestamp64Milli(timestamp) ="
                         " {ct:Int64} AND toString(event_id) > {ce:String}))")
            params.update(ct=c["t"], ce=c["e"])
        # The page's keys first, from the key columns only; then the shown columns of those rows alone (sorting
        # every stored event of a busy issue with its message and other columns was the slow part).
        page = ("SELECT timestamp, event_id FROM {db}.error_events WHERE " + " AND ".join(where)
                + " ORDER BY timestamp DESC, event_id ASC LIMIT 1 BY event_id LIMIT {lim:UInt32}")
        rows = self._rows(
            "SELECT toString(event_id) AS event_id, timestamp, service, environment, release, toString(level) AS level,"
            " message, user_id, server_name, trace_id, toUnixTimestamp64Milli(timestamp) AS ms"
            f" FROM {{db}}.error_events WHERE {OF_ISSUE} AND (timestamp, event_id) IN ({page})"
            " ORDER BY timestamp DESC, event_id ASC LIMIT 1 BY event_id LIMIT {lim:UInt32}", **params,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        events = [EventSummary(**{k: v for k, v in x.items() if k != "ms"} | {"timestamp": utc(x["timestamp"])})
                  for x in rows]
        nxt = encode_cursor({"t": int(rows[-1]["ms"]), "e": rows[-1]["event_id"]}) if more else None
        return EventPage(events=events, next_cursor=nxt)

    def event(self, event_id: str) -> EventDetail | None:
        rows = self._rows(
            "SELECT toString(event_id) AS event_id, timestamp, received_at, service, environment, release,"
            " toString(level) AS level, fingerprint, exception_type, title, culprit, message, logger, platform,"
            " server_name, user_id, tags, trace_id, span_id, correlation_id, request_method, request_url,"
            " exceptions, breadcrumbs, context, sample_rate, recovery, resources"
            " FROM {db}.error_events AS e WHERE e.event_id = {id:UUID} LIMIT 1", id=event_id,
        )
        if not rows:
            return None
        x = rows[0]
        exceptions = [
            ExceptionRow(type=str(exc.get("type") or "?"), value=str(exc.get("value") or ""), module=exc.get("module"),
                         mechanism=exc.get("mechanism"),
                         frames=[Frame(**{**fr, "in_app": bool(fr.get("in_app"))}) for fr in exc.get("stacktrace") or []])
            for exc in _json_list(x["exceptions"])
        ]
        context = orjson.loads(x["context"]) if x["context"] else {}
        return EventDetail(
            event_id=x["event_id"], timestamp=ts(x["timestamp"]), received_at=ts(x["received_at"]),
            service=x["service"], environment=x["environment"], release=x["release"], level=x["level"],
            message=x["message"], user_id=x["user_id"], server_name=x["server_name"], trace_id=x["trace_id"],
            fingerprint=x["fingerprint"], title=x["title"], culprit=x["culprit"], exception_type=x["exception_type"],
            logger=x["logger"], platform=x["platform"], sample_rate=float(x["sample_rate"]), span_id=x["span_id"],
            correlation_id=x["correlation_id"],
            request={k: v for k, v in (("method", x["request_method"]), ("url", x["request_url"])) if v},
            user={"id": x["user_id"]} if x["user_id"] else {}, tags=dict(x["tags"]),
            contexts=context if isinstance(context, dict) else {"context": context},
            exceptions=exceptions, breadcrumbs=[b for b in _json_list(x["breadcrumbs"]) if isinstance(b, dict)],
            recovery=_json_object(x["recovery"]), resources=_json_object(x["resources"]),
        )

    # --- alerts, chains, overview ----------------------------------------------------------------
    def alerts(self, fingerprint: str | None = None, limit: int = 50, kind: str | None = None) -> list[AlertRow]:
        where = ["1"]
        if fingerprint:  # the issue's own alerts and those its members raised before they were merged
            where.append(MEMBERS_OF)
        if kind:
            where.append("kind = {kind:String}")
        rows = self._rows(
            "SELECT toString(alert_id) AS alert_id, kind, severity, created_at, service, fingerprint, title, message"
            " FROM {db}.alerts FINAL WHERE " + " AND ".join(where) + " ORDER BY created_at DESC LIMIT {lim:UInt32}",
            fps=[fingerprint or ""], kind=kind or "", lim=limit,
        )
        return [AlertRow(**{**x, "created_at": utc(x["created_at"])}) for x in rows]

    def chains(self, fingerprint: str | None = None, limit: int = 25, trace_id: str | None = None) -> list[ChainRow]:
        where = ["1"]
        if fingerprint:  # chains through any fingerprint of the issue (its members' too)
            where.append("hasAny(arrayPushFront(events.fingerprint, root_fingerprint), arrayPushFront((SELECT"
                         " groupArray(fingerprint) FROM {db}.issue_merges FINAL WHERE primary_fingerprint = {fp:String}),"
                         " {fp:String}))")
        if trace_id:
            where.append("trace_id = {trace:String}")
        rows = self._rows(
            "SELECT trace_id, started_at, ended_at, root_service, root_fingerprint, root_title,"
            " toString(root_event_id) AS root_event_id, services, event_count,"
            " arrayMap(x -> toString(x), events.event_id) AS ev_id, events.service AS ev_service,"
            " events.fingerprint AS ev_fp, events.title AS ev_title, events.timestamp AS ev_ts"
            " FROM {db}.error_chains FINAL WHERE " + " AND ".join(where)
            + " ORDER BY started_at DESC LIMIT {lim:UInt32}",
            fp=fingerprint or "", trace=trace_id or "", lim=limit,
        )
        out = []
        for x in rows:
            evs = [ChainEvent(event_id=a, service=b, fingerprint=c, title=d, timestamp=utc(t))  # type: ignore[arg-type]
                   for a, b, c, d, t in zip(x["ev_id"], x["ev_service"], x["ev_fp"], x["ev_title"], x["ev_ts"],
                                            strict=False)]
            out.append(ChainRow(
                trace_id=x["trace_id"], started_at=ts(x["started_at"]), ended_at=ts(x["ended_at"]),
                root_service=x["root_service"], root_fingerprint=x["root_fingerprint"], root_title=x["root_title"],
                root_event_id=x["root_event_id"], services=list(x["services"]), event_count=int(x["event_count"]),
                events=sorted(evs, key=lambda ev: ev.timestamp),
            ))
        return out

    def series_start(self, since: timedelta = timedelta(hours=1)) -> datetime:
        """The first minute of ``service_series``' window (the charts' left edge)."""
        return (self._now() - since).replace(second=0, microsecond=0) + timedelta(minutes=1)

    def service_series(self, since: timedelta = timedelta(hours=1)) -> dict[str, list[tuple[datetime, str, int]]]:
        """Events per minute per service and level over the last ``since`` (true counts, error_service_counts_1m)."""
        start = self.series_start(since)
        rows = self.client.query(
            f"SELECT service, minute, toString(level), sum(events) FROM {self.db}.error_service_counts_1m"
            " WHERE minute >= {start:DateTime('UTC')} GROUP BY service, minute, level ORDER BY service, minute",
            parameters={"start": naive(start)},
        ).result_rows
        out: dict[str, list[tuple[datetime, str, int]]] = {}
        for service, minute, level, n in rows:
            out.setdefault(service, []).append((utc(minute), level, int(n)))  # type: ignore[arg-type]
        return out

    def facets(self) -> dict[str, list[str]]:
        """Known services, environments, releases and assignees, for the stream's filter menus."""
        rows = self._rows(
            "SELECT arraySort(groupUniqArrayArray(services)) AS services,"
            " arraySort(groupUniqArrayArray(environments)) AS environments,"
            " arraySort(arraySlice(arrayReverseSort(groupUniqArrayArray(releases)), 1, 50)) AS releases"
            " FROM {db}.error_groups"
        )
        assignees = self.client.query(
            f"SELECT DISTINCT assignee FROM {self.db}.issue_status FINAL WHERE assignee != '' ORDER BY assignee LIMIT 200"
        ).result_rows
        r = rows[0] if rows else {"services": [], "environments": [], "releases": []}
        return {"services": list(r["services"]), "environments": list(r["environments"]),
                "releases": list(r["releases"]), "assignees": [a for (a,) in assignees]}


def _json_object(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _json_list(text: str) -> list[Any]:
    if not text:
        return []
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    return doc if isinstance(doc, list) else []
