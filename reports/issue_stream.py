"""The issue stream and the issue page, read from ClickHouse: what ``errstream web`` shows and serves.

Every query reads the incrementally maintained tables through the analysts' views
(``v_error_groups`` for issues, ``error_counts_1h`` for counts and sparklines); raw
events (``error_events``) are read only for one issue at a time (its events, tags,
first/last release) or for a text search in messages. Every user value is a bound
query parameter, never pasted into SQL.

The workflow state shown here is the latest change in ``issue_status`` with two
conditions the status alone cannot express evaluated at read time:

* ``ignored`` with an ``ignore_until`` time in the past, or with at least
  ``ignore_until_events`` more events than when it was ignored, reads as ``new``;
* ``resolved`` reads as ``regressed`` once seen again after the resolution — for a
  resolution "in the next release", only when a release unknown at the resolution
  has appeared.
"""

from __future__ import annotations

import base64
import binascii
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, Field

from reports.merges import ISSUE_OF, MEMBERS_OF, MERGE_HISTORY_SQL, MERGED

SORTS: tuple[str, ...] = ("last_seen", "first_seen", "events", "users", "trend")
STATUSES = ("new", "acknowledged", "investigating", "resolved", "ignored", "regressed")
OPEN_STATUSES = ("new", "acknowledged", "investigating", "regressed")
LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_LIMIT = 100


class IssueFilter(BaseModel):
    """Filters of the issue stream; every field optional. ``status`` may hold ``open`` (= the open ones)."""

    service: str | None = None
    environment: str | None = None
    release: str | None = None
    level: str | None = None  # the issue's worst level
    status: list[str] = Field(default_factory=list)
    assignee: str | None = None  # "none" = unassigned
    first_seen_from: datetime | None = None
    first_seen_to: datetime | None = None
    last_seen_from: datetime | None = None
    last_seen_to: datetime | None = None
    q: str | None = Field(default=None, max_length=200)  # text in title, culprit or (last 14 days) message


class IssueSummary(BaseModel):
    fingerprint: str
    title: str
    culprit: str
    exception_type: str
    level: str
    status: str
    assignee: str
    services: list[str]
    environments: list[str]
    releases: list[str] = Field(default_factory=list)  # every release it was seen in (sorted as text)
    first_seen: datetime
    last_seen: datetime
    events: int  # true count, all time (sampling never reduces it)
    users: int
    events_24h: int = 0
    events_14d: int = 0
    series_24h: list[int] = Field(default_factory=list)  # 24 hourly counts, oldest first
    series_14d: list[int] = Field(default_factory=list)  # 14 daily counts, oldest first
    members: list[str] = Field(default_factory=list)  # the fingerprints whose events it counts (more than one: merged)


class IssuePage(BaseModel):
    issues: list[IssueSummary]
    next_cursor: str | None  # pass as ``cursor`` for the next page; None = last page


class StatusChangeRow(BaseModel):
    changed_at: datetime
    status: str
    action: str
    changed_by: str
    note: str
    assignee: str


class MergeRow(BaseModel):
    """One merge or unmerge of a fingerprint of this issue's group (who and when, like a status change)."""

    changed_at: datetime
    action: str  # merge | unmerge
    fingerprint: str
    primary: str  # "" for an unmerge
    changed_by: str
    note: str


class TagValue(BaseModel):
    value: str
    count: int


class AlertRow(BaseModel):
    alert_id: str
    kind: str
    severity: str
    created_at: datetime
    service: str
    fingerprint: str
    title: str
    message: str


class ChainEvent(BaseModel):
    event_id: str
    service: str
    fingerprint: str
    title: str
    timestamp: datetime


class ChainRow(BaseModel):
    trace_id: str
    started_at: datetime
    ended_at: datetime
    root_service: str
    root_fingerprint: str
    root_title: str
    root_event_id: str
    services: list[str]
    event_count: int
    events: list[ChainEvent] = Field(default_factory=list)


class IssueDetail(IssueSummary):
    stored: int
    releases: list[str]
    first_release: str
    last_release: str
    raw_status: str  # as last recorded (``status`` applies the ignore/resolve conditions)
    status_changed_at: datetime | None
    ignore_until: datetime | None
    ignore_until_events: int | None
    resolved_in_next_release: bool
    history: list[StatusChangeRow]
    merges: list[MergeRow] = Field(default_factory=list)
    tags: dict[str, list[TagValue]]
    timeline_24h: list[tuple[datetime, int]]  # hourly
    timeline_14d: list[tuple[datetime, int]]  # daily
    alerts: list[AlertRow]
    chains: list[ChainRow]
    latest_event_id: str | None


class EventSummary(BaseModel):
    event_id: str
    timestamp: datetime
    service: str
    environment: str
    release: str
    level: str
    message: str
    user_id: str
    server_name: str
    trace_id: str


class EventPage(BaseModel):
    events: list[EventSummary]
    next_cursor: str | None


class Frame(BaseModel):
    filename: str | None = None
    abs_path: str | None = None
    module: str | None = None
    function: str | None = None
    lineno: int | None = None
    colno: int | None = None
    in_app: bool = False
    context_line: str | None = None


class ExceptionRow(BaseModel):
    type: str
    value: str
    module: str | None = None
    mechanism: dict[str, Any] | None = None
    frames: list[Frame]  # outermost call first, the raising frame last


class EventDetail(EventSummary):
    fingerprint: str
    title: str
    culprit: str
    exception_type: str
    logger: str
    platform: str
    received_at: datetime
    sample_rate: float
    span_id: str
    correlation_id: str
    request: dict[str, str]
    user: dict[str, str]
    tags: dict[str, str]
    contexts: dict[str, Any]
    exceptions: list[ExceptionRow]  # root cause first, the finally raised one last (as stored)
    breadcrumbs: list[dict[str, Any]]


class BadQuery(ValueError):
    """A filter, sort or cursor the caller got wrong (the API answers 400 with the message)."""


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ts(value: datetime) -> datetime:
    """A ClickHouse time (naive UTC from clickhouse-connect) as an aware UTC datetime."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def encode_cursor(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=")


def decode_cursor(text: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadQuery("cursor is not one this API returned") from None
    if not isinstance(doc, dict):
        raise BadQuery("cursor is not one this API returned")
    return doc


# The issue's state: the fold of error_groups (v_error_groups) plus the latest workflow record's extra fields.
# The recorded status is read from issue_status itself, not from the view: v_error_groups already turns any later
# event of a resolved issue into 'regressed', which knows nothing of "resolved in the next release", so the
# stream's filters (which rank over the view) and the rows shown (folded per page) disagreed.
STATE_SQL = """
SELECT g.fingerprint AS fingerprint, g.title AS title, g.culprit AS culprit, g.exception_type AS exception_type,
       toString(g.worst_level) AS level, g.first_seen AS first_seen, g.last_seen AS last_seen,
       g.events AS events, g.stored AS stored, g.users AS users, g.services AS services,
       g.environments AS environments, g.releases AS releases,
       if(s.fingerprint = '', 'new', s.recorded_status) AS raw_status,
       g.status_changed_at AS status_changed_at, s.assignee AS assignee, s.ignore_until AS ignore_until,
       s.ignore_until_events AS ignore_until_events, s.ignore_events_baseline AS ignore_events_baseline,
       s.resolved_in_next_release AS resolved_in_next_release, s.resolved_releases AS resolved_releases,
       g.members AS members,
       multiIf(
         raw_status = 'ignored' AND ((ignore_until IS NOT NULL AND ignore_until <= now64(3))
           OR (ignore_until_events IS NOT NULL
               AND g.events >= ifNull(ignore_events_baseline, 0) + ignore_until_events)), 'new',
         raw_status = 'resolved' AND g.last_seen > status_changed_at
           AND (resolved_in_next_release = 0 OR arrayExists(r -> NOT has(resolved_releases, r), g.releases)),
           'regressed',
         raw_status) AS status
FROM {db}.v_error_groups AS g
LEFT JOIN (SELECT fingerprint, toString(status) AS recorded_status, assignee, ignore_until, ignore_until_events,
                  ignore_events_baseline, resolved_in_next_release, resolved_releases
           FROM {db}.issue_status FINAL{only}) AS s
  ON s.fingerprint = g.fingerprint
"""

# v_error_groups' fold for a few issues only: the fingerprints go inside its GROUP BY (a filter on the view is
# not pushed through the fold and its user-set merges, which made a page of 25 cost a fold of every issue).
# A merged group folds under its primary, as in the view.
_PAGE_GROUPS = """(
SELECT f.fingerprint AS fingerprint, f.exception_type AS exception_type, f.title AS title, f.culprit AS culprit,
       f.first_seen AS first_seen, f.last_seen AS last_seen, f.events AS events, f.stored AS stored, f.users AS users,
       f.worst_level AS worst_level, f.services AS services, f.environments AS environments, f.releases AS releases,
       f.members AS members,
       if(st.fingerprint = '', 'new', toString(st.status)) AS status,
       if(st.fingerprint = '', NULL, st.changed_at) AS status_changed_at
FROM (SELECT ISSUE_OF AS fingerprint, PRIMARYS(exception_type) AS exception_type, PRIMARYS(title) AS title,
             PRIMARYS(culprit) AS culprit,
             min(e.first_seen) AS first_seen, max(e.last_seen) AS last_seen,
             sum(e.events) AS events, sum(e.stored) AS stored, uniqCombinedMerge(12)(e.users) AS users,
             max(e.worst_level) AS worst_level, arraySort(groupUniqArrayArray(e.services)) AS services,
             arraySort(groupUniqArrayArray(e.environments)) AS environments,
             arraySort(groupUniqArrayArray(e.releases)) AS releases, arraySort(groupUniqArray(e.fingerprint)) AS members
      FROM (SELECT * FROM {db}.error_groups WHERE MEMBERS_OF) AS e LEFT JOIN MERGED AS m ON m.fingerprint = e.fingerprint
      GROUP BY fingerprint) AS f
LEFT JOIN (SELECT fingerprint, status, changed_at FROM {db}.issue_status FINAL
           WHERE fingerprint IN {fps:Array(String)}) AS st ON st.fingerprint = f.fingerprint)"""
for _column in ("exception_type", "title", "culprit"):  # the primary's own, when it has events (as in the view)
    _PAGE_GROUPS = _PAGE_GROUPS.replace(
        f"PRIMARYS({_column})", f"if(countIf(e.fingerprint = ISSUE_OF) > 0, anyLastIf(e.{_column}, e.fingerprint = "
        f"ISSUE_OF), anyLast(e.{_column}))")
_PAGE_GROUPS = _PAGE_GROUPS.replace("ISSUE_OF", ISSUE_OF).replace("MEMBERS_OF", MEMBERS_OF).replace("MERGED", MERGED)
PAGE_STATE_SQL = (STATE_SQL.replace("{db}.v_error_groups AS g", _PAGE_GROUPS + " AS g")
                  .replace("{only}", " WHERE fingerprint IN {fps:Array(String)}"))

# Raw events of one issue (``fps`` = [the issue], its members' events too): its services (from error_groups)
# narrow error_events' primary key (service, fingerprint).
_OF_ISSUE = (f"service IN (SELECT arrayJoin(services) FROM {{db}}.error_groups WHERE {MEMBERS_OF})"
             f" AND {MEMBERS_OF}")
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="issue-queries")
    return _POOL


_SORT_KEY = {
    "last_seen": "toInt64(toUnixTimestamp64Milli(last_seen))",
    "first_seen": "toInt64(toUnixTimestamp64Milli(first_seen))",
    "events": "toInt64(events)",
    "users": "toInt64(users)",
    "trend": "toInt64(trend)",
}


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
                " FROM (SELECT fingerprint, hour, events FROM {db}.error_counts_1h"
                " WHERE hour >= toStartOfHour(now() - INTERVAL 47 HOUR)) AS e"
                f" LEFT JOIN {MERGED} AS m ON m.fingerprint = e.fingerprint"
                " GROUP BY issue) AS t ON t.issue = i.fingerprint"
            )
        key = _SORT_KEY[sort]
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
                params[name] = _naive(value)
        if f.q:
            where.append(
                "(positionCaseInsensitiveUTF8(i.title, {q:String}) > 0"
                " OR positionCaseInsensitiveUTF8(i.culprit, {q:String}) > 0"
                " OR i.fingerprint = lower({q:String}) OR has(i.members, lower({q:String}))"
                " OR i.fingerprint IN (SELECT DISTINCT fingerprint FROM {db}.error_events"
                "   WHERE timestamp >= now() - INTERVAL 14 DAY AND positionCaseInsensitiveUTF8(message, {q:String}) > 0))"
            )
            params["q"] = f.q
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

    def _hourly(self, fingerprints: list[str]) -> dict[str, dict[datetime, int]]:
        """True counts per hour of these issues over the last 14 days (error_counts_1h)."""
        first_day = self._now().replace(minute=0, second=0, microsecond=0, hour=0) - timedelta(days=13)
        rows = self.client.query(
            (f"SELECT {ISSUE_OF} AS issue, e.hour, sum(e.events) FROM (SELECT fingerprint, hour, events"
             " FROM {db}.error_counts_1h"
             f" WHERE hour >= {{start:DateTime('UTC')}} AND {MEMBERS_OF}"
             # the services of these issues let the key (day, service, fingerprint, …) skip other issues' cells
             f" AND service IN (SELECT arrayJoin(services) FROM {{db}}.error_groups WHERE {MEMBERS_OF})) AS e"
             f" LEFT JOIN {MERGED} AS m ON m.fingerprint = e.fingerprint"
             " GROUP BY issue, e.hour").replace("{db}", self.db),
            parameters={"start": _naive(first_day), "fps": fingerprints},
        ).result_rows
        hourly: dict[str, dict[datetime, int]] = {}
        for fp, hour, n in rows:
            hourly.setdefault(fp, {})[ts(hour)] = int(n)
        return hourly

    def _fill_counts(self, issues: list[IssueSummary], hourly: dict[str, dict[datetime, int]]) -> None:
        now_hour = self._now().replace(minute=0, second=0, microsecond=0)
        first_day = now_hour.replace(hour=0) - timedelta(days=13)
        for issue in issues:
            cells = hourly.get(issue.fingerprint, {})
            issue.series_24h = [cells.get(now_hour - timedelta(hours=23 - k), 0) for k in range(24)]
            days = [0] * 14
            for hour, n in cells.items():
                d = (hour - first_day).days
                if 0 <= d < 14:
                    days[d] += n
            issue.series_14d = days
            issue.events_24h = sum(issue.series_24h)
            issue.events_14d = sum(days)

    # --- one issue ----------------------------------------------------------------------------
    def issue(self, fingerprint: str) -> IssueDetail | None:
        """The issue page. Its queries are independent, so they run at once: a ClickHouse server serves them
        in parallel, and even a serialised one (embedded chDB) overlaps their round trips."""
        fingerprint = self.primary_of(fingerprint)  # a merged fingerprint's page is its group's
        pool = _pool()
        state = pool.submit(self._rows, PAGE_STATE_SQL, fps=[fingerprint])
        counts = pool.submit(self._hourly, [fingerprint])
        ends = pool.submit(
            self._rows,
            "SELECT argMin(release, timestamp) AS first_release, argMax(release, timestamp) AS last_release,"
            " toString(argMax(event_id, timestamp)) AS latest FROM {db}.error_events"
            f" WHERE {_OF_ISSUE}", fps=[fingerprint],
        )
        history = pool.submit(self.history, fingerprint)
        merges = pool.submit(self.merges, fingerprint)
        tags = pool.submit(self.top_tags, fingerprint)
        alerts = pool.submit(self.alerts, fingerprint, 20)
        chains = pool.submit(self.chains, fingerprint, 10)
        rows = state.result()
        if not rows:
            for f in (counts, ends, history, merges, tags, alerts, chains):
                f.result()
            return None
        r = rows[0]
        base = self._summary(r)
        self._fill_counts([base], counts.result())
        e = (ends.result() or [{}])[0]
        latest = e.get("latest")
        now_hour = self._now().replace(minute=0, second=0, microsecond=0)
        first_day = now_hour.replace(hour=0) - timedelta(days=13)
        return IssueDetail(
            **base.model_dump(exclude={"releases"}), stored=int(r["stored"]), releases=list(r["releases"]),
            first_release=e.get("first_release") or "", last_release=e.get("last_release") or "",
            raw_status=r["raw_status"], status_changed_at=utc(r["status_changed_at"]),
            ignore_until=utc(r["ignore_until"]), ignore_until_events=r["ignore_until_events"],
            resolved_in_next_release=bool(r["resolved_in_next_release"]),
            history=history.result(), merges=merges.result(), tags=tags.result(),
            timeline_24h=[(now_hour - timedelta(hours=23 - k), n) for k, n in enumerate(base.series_24h)],
            timeline_14d=[(first_day + timedelta(days=k), n) for k, n in enumerate(base.series_14d)],
            alerts=alerts.result(), chains=chains.result(),
            latest_event_id=latest if latest and latest != "00000000-0000-0000-0000-000000000000" else None,
        )

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
        """Top values per tag over the issue's stored events; environment, release, server and service too."""
        rows = self._rows(
            "SELECT k, v, count() AS n FROM {db}.error_events"
            " ARRAY JOIN arrayConcat(['environment', 'release', 'server_name', 'service'],"
            "   arrayMap(x -> toString(x), mapKeys(tags))) AS k,"
            "   arrayConcat([toString(environment), toString(release), toString(server_name), toString(service)],"
            "   mapValues(tags)) AS v"
            f" WHERE {_OF_ISSUE} AND v != ''"
            " GROUP BY k, v ORDER BY k, n DESC, v LIMIT {per:UInt32} BY k",
            fps=[fingerprint], per=per_tag,
        )
        out: dict[str, list[TagValue]] = {}
        for x in rows:
            out.setdefault(x["k"], []).append(TagValue(value=x["v"], count=int(x["n"])))
        return out

    def events(self, fingerprint: str, cursor: str | None = None, limit: int = 25) -> EventPage:
        limit = max(1, min(limit, MAX_LIMIT))
        where = [_OF_ISSUE]
        params: dict[str, Any] = {"fps": [self.primary_of(fingerprint)], "lim": limit + 1}
        if cursor:
            c = decode_cursor(cursor)
            if not isinstance(c.get("t"), int) or not isinstance(c.get("e"), str):
                raise BadQuery("cursor is not one this API returned")
            where.append("(toUnixTimestamp64Milli(timestamp) < {ct:Int64} OR (toUnixTimestamp64Milli(timestamp) ="
                         " {ct:Int64} AND toString(event_id) > {ce:String}))")
            params.update(ct=c["t"], ce=c["e"])
        rows = self._rows(
            "SELECT toString(event_id) AS event_id, timestamp, service, environment, release, toString(level) AS level,"
            " message, user_id, server_name, trace_id, toUnixTimestamp64Milli(timestamp) AS ms"
            " FROM {db}.error_events WHERE " + " AND ".join(where)
            + " ORDER BY timestamp DESC, event_id ASC LIMIT 1 BY event_id LIMIT {lim:UInt32}", **params,
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
            " exceptions, breadcrumbs, context, sample_rate"
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

    def service_series(self, since: timedelta = timedelta(hours=1)) -> dict[str, list[tuple[datetime, str, int]]]:
        """Events per minute per service and level over the last ``since`` (true counts, error_counts_1m)."""
        start = (self._now() - since).replace(second=0, microsecond=0)
        rows = self.client.query(
            f"SELECT service, minute, toString(level), sum(events) FROM {self.db}.error_counts_1m"
            " WHERE minute >= {start:DateTime('UTC')} GROUP BY service, minute, level ORDER BY service, minute",
            parameters={"start": _naive(start)},
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


def _json_list(text: str) -> list[Any]:
    if not text:
        return []
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    return doc if isinstance(doc, list) else []
