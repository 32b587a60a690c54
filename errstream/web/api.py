"""The REST API under ``/api/v1``: reads from ClickHouse, changes through the issue-status topic.

Read endpoints need the viewer role, actions the member role, token management admin.
Query functions live in ``reports.issue_queries`` (the CLI and the pages use the same);
they run in the thread pool because clickhouse-connect is synchronous.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from errstream.issue_actions import MERGE_ACTIONS, Action, ActionRequest
from errstream.issue_merges import MergeError
from errstream.web.auth import Principal, Role
from errstream.web.deps import api_user, web
from errstream.web.overview import overview as shared_overview
from errstream.web.saved_searches import SavedSearch, SearchLimit
from reports import search_syntax
from reports.event_nav import EventNav, event_nav
from reports.issue_queries.models import (
    AlertRow,
    BadQuery,
    ChainRow,
    EventDetail,
    EventPage,
    IssueDetail,
    IssueFilter,
    IssuePage,
    IssueSummary,
)
from reports.release_health import ReleaseHealth, release_health, release_window
from reports.report import Report, parse_since
from reports.similar_issues import SimilarIssue, similar_issues
from schemas.issue_merge import IssueMergeChange
from schemas.issue_status import IssueStatusChange

router = APIRouter(prefix="/api/v1", tags=["api"])
Fingerprint = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="32 lowercase hex characters")]
Viewer = Annotated[Principal, Depends(api_user("viewer"))]
Member = Annotated[Principal, Depends(api_user("member"))]
Admin = Annotated[Principal, Depends(api_user("admin"))]


class ActionBody(BaseModel):
    """An action on one issue (the issue is in the path)."""

    action: Action
    note: str = Field(default="", max_length=4_000)
    assignee: str = Field(default="", max_length=200)
    in_next_release: bool = False
    ignore_minutes: int | None = Field(default=None, ge=1, le=525_600)
    ignore_until_events: int | None = Field(default=None, ge=1)
    until_escalating: bool = False  # ignore: back once it escalates (the action archive implies it)
    into: str | None = None  # merge: the primary to merge this issue into


class ActionResult(BaseModel):
    published: list[IssueStatusChange]  # the records on the issue-status topic, acknowledged by the broker
    merges: list[IssueMergeChange] = []  # merge/unmerge: the records on the merge topic, acknowledged


class OverviewResponse(BaseModel):
    report: Report  # counts, top issues, timeline, per service, spikes, chains (errstream report's model)
    per_minute: dict[str, list[tuple[datetime, str, int]]]  # service → (minute, level, events), last hour
    new_issues: list[IssueSummary]
    alerts: list[AlertRow]


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role = "viewer"


class Me(BaseModel):
    name: str
    role: str


def _bad(exc: Exception) -> HTTPException:
    return HTTPException(400, str(exc))


@router.get("/me", response_model=Me)
async def me(who: Viewer) -> Me:
    return Me(name=who.name, role=who.role)


@router.get("/issues", response_model=IssuePage)
def list_issues(
    request: Request, who: Viewer,
    service: str | None = None, environment: str | None = None, release: str | None = None,
    level: str | None = None,
    status: Annotated[list[str], Query(description="repeatable; open = new, acknowledged, investigating, "
                                                   "regressed, escalating")] = [],  # noqa: B006 (FastAPI copies it)
    assignee: Annotated[str | None, Query(description='a name, or "none" for unassigned')] = None,
    first_seen_from: datetime | None = None, first_seen_to: datetime | None = None,
    last_seen_from: datetime | None = None, last_seen_to: datetime | None = None,
    q: Annotated[str | None, Query(max_length=200, description="text in title, culprit or message")] = None,
    query: Annotated[str | None, Query(max_length=search_syntax.MAX_QUERY, description=(
        "the search syntax: is:unresolved (is:escalating, is:archived …) level:error release:1.4.2 service:billing env:prod assigned:me "
        "and text; its terms win over the other parameters, its text over q"))] = None,
    sort: Annotated[str, Query(description="last_seen, first_seen, events, users or trend (descending)")] = "last_seen",
    cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> IssuePage:
    fields: dict[str, Any] = dict(service=service, environment=environment, release=release, level=level,
                                  status=status, assignee=assignee, q=q)
    try:
        if query:
            parsed = search_syntax.parse(query, me=who.name)
            if parsed.text_cut:
                raise search_syntax.SearchError(f"the text of the search is over {search_syntax.MAX_TEXT} characters")
            fields |= parsed.fields | ({"q": parsed.text} if parsed.text else {})
        f = IssueFilter(**fields, first_seen_from=first_seen_from, first_seen_to=first_seen_to,
                        last_seen_from=last_seen_from, last_seen_to=last_seen_to)
        return web(request).queries.list_issues(f, sort, cursor, limit)
    except (BadQuery, search_syntax.SearchError) as exc:
        raise _bad(exc) from None


@router.get("/issues/{fingerprint}", response_model=IssueDetail)
def issue(request: Request, who: Viewer, fingerprint: Fingerprint) -> IssueDetail:
    found = web(request).queries.issue(fingerprint)
    if found is None:
        raise HTTPException(404, "no such issue")
    return found


@router.get("/issues/{fingerprint}/events", response_model=EventPage)
def issue_events(request: Request, who: Viewer, fingerprint: Fingerprint, cursor: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=100)] = 25) -> EventPage:
    try:
        return web(request).queries.events(fingerprint, cursor, limit)
    except BadQuery as exc:
        raise _bad(exc) from None


@router.get("/events/{event_id}", response_model=EventDetail)
def event(request: Request, who: Viewer, event_id: uuid.UUID) -> EventDetail:
    found = web(request).queries.event(str(event_id))
    if found is None:
        raise HTTPException(404, "no such event (it may have been sampled away or expired)")
    return found


@router.get("/issues/{fingerprint}/similar", response_model=list[SimilarIssue],
            summary="Issues whose grouping components mostly agree with this one's: candidates to merge")
def similar(request: Request, who: Viewer, fingerprint: Fingerprint) -> list[SimilarIssue]:
    w = web(request)
    found = w.queries.summary(fingerprint)  # its type, culprit and services: not the whole issue page's queries
    if found is None:
        raise HTTPException(404, "no such issue")
    return similar_issues(w.client, w.settings.clickhouse_database, found.fingerprint, found.exception_type,
                          found.culprit)


@router.get("/events/{event_id}/nav", response_model=EventNav,
            summary="The oldest, older, newer and latest stored events of the event's issue")
def event_neighbours(request: Request, who: Viewer, event_id: uuid.UUID) -> EventNav:
    w = web(request)
    found = w.queries.event(str(event_id))
    if found is None:
        raise HTTPException(404, "no such event (it may have been sampled away or expired)")
    return event_nav(w.client, w.settings.clickhouse_database, w.queries.primary_of(found.fingerprint),
                     found.event_id)


async def _act(request: Request, who: Principal, req: ActionRequest) -> ActionResult:
    if req.action in MERGE_ACTIONS:
        try:
            return ActionResult(published=[], merges=await web(request).apply_merge(req, who))
        except MergeError as exc:
            raise _bad(exc) from None
    changes = await web(request).apply(req, who)
    return ActionResult(published=changes)


@router.post("/issues/{fingerprint}/actions", response_model=ActionResult)
async def act(request: Request, who: Member, fingerprint: Fingerprint, body: ActionBody) -> ActionResult:
    try:
        req = ActionRequest(fingerprints=[fingerprint], **body.model_dump())
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None
    return await _act(request, who, req)


@router.post("/issues/actions", response_model=ActionResult, summary="Bulk action over a selection of issues")
async def bulk_act(request: Request, who: Member, body: ActionRequest) -> ActionResult:
    return await _act(request, who, body)


@router.get("/overview", response_model=OverviewResponse)
def overview(request: Request, who: Viewer, since: str = "24h", service: str | None = None) -> OverviewResponse:
    try:
        parse_since(since)
    except ValueError as exc:
        raise _bad(exc) from None
    w = web(request)
    q = w.queries
    o = shared_overview(w.overview, w.client, w.settings.clickhouse_database, since, service)
    return OverviewResponse(report=o.report, per_minute=q.service_series(), new_issues=o.new_issues,
                            alerts=q.alerts(limit=20))


@router.get("/releases", response_model=list[ReleaseHealth],
            summary="Release health: sessions, crash-free sessions and users, errors and adoption per release")
def releases(request: Request, who: Viewer, since: Annotated[str, Query(pattern="^(24h|7d|14d)$")] = "24h",
             service: str | None = None) -> list[ReleaseHealth]:
    w = web(request)
    _, start, hours = release_window(since)
    return release_health(w.client, w.settings.clickhouse_database, start, hours, service)


@router.get("/alerts", response_model=list[AlertRow])
def alerts(request: Request, who: Viewer, kind: str | None = None,
           limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[AlertRow]:
    return web(request).queries.alerts(kind=kind, limit=limit)


@router.get("/chains", response_model=list[ChainRow])
def chains(request: Request, who: Viewer, limit: Annotated[int, Query(ge=1, le=200)] = 25) -> list[ChainRow]:
    return web(request).queries.chains(limit=limit)


@router.get("/stream", summary="Server-Sent Events: `alert` with each new alert (new issues, regressions, spikes, "
                               "chains); `tick` when the last 24 hours' event count changed",
            response_class=StreamingResponse)
async def stream(request: Request, who: Viewer) -> StreamingResponse:
    feed = web(request).feed
    if feed is None:
        raise HTTPException(503, "the live feed is off")
    queue = feed.subscribe()
    # Bounded: the browser reconnects (after `retry`) to a stream that ended, so a connection nobody reads any more
    # (a frozen tab, a proxy that hides the close) is let go within web_stream_seconds.
    ends_at = time.monotonic() + web(request).settings.web_stream_seconds

    async def events() -> Any:
        try:
            yield b"retry: 2000\n: connected\n\n"
            while (left := ends_at - time.monotonic()) > 0:
                try:
                    kind, doc = await asyncio.wait_for(queue.get(), min(15.0, left))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(doc) + b"\n\n"
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/searches", response_model=list[SavedSearch], summary="Your saved searches")
def list_searches(request: Request, who: Viewer) -> list[SavedSearch]:
    return web(request).searches.list(who.name)  # type: ignore[no-any-return]


@router.post("/searches", response_model=SavedSearch, summary="Save (or replace, by name) one of your searches")
def save_search(request: Request, who: Viewer, body: SavedSearch) -> SavedSearch:
    try:
        return web(request).searches.save(who.name, body)  # type: ignore[no-any-return]
    except SearchLimit as exc:
        raise _bad(exc) from None


@router.delete("/searches/{name}", status_code=204, summary="Delete one of your saved searches")
def delete_search(request: Request, who: Viewer, name: str) -> None:
    if not web(request).searches.delete(who.name, name):
        raise HTTPException(404, "no such saved search")


@router.get("/tokens")
async def list_tokens(request: Request, who: Admin) -> list[dict[str, str]]:
    return web(request).tokens.list()


@router.post("/tokens", summary="Create a token; its secret is in this response only")
async def create_token(request: Request, who: Admin, body: TokenCreate) -> dict[str, str]:
    token = web(request).tokens.create(body.name, body.role, created_by=who.name)
    return {"token": token, "name": body.name, "role": body.role}
