"""Server-rendered pages: overview, issue stream, issue, event, chains, alerts, settings, login.

Pages work without JavaScript: filters are GET forms, actions are POST forms with the
session's CSRF token that redirect back (303) with a message. ``static/web.js`` only
adds keyboard shortcuts, live alerts (Server-Sent Events) and the issue page's similar issues
after its first paint (a link to their page without it). Jinja2 escapes every value.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from errstream.issue_actions import MERGE_ACTIONS, ActionRequest
from errstream.issue_merges import MergeError
from errstream.web import breadcrumbs, frames, svg
from errstream.web.auth import Principal, Session
from errstream.web.deps import COOKIE, check_form_csrf, page_user, session_of, web
from errstream.web.overview import overview as shared_overview
from errstream.web.saved_searches import SavedSearch, SearchLimit, stream_query
from reports import search_syntax
from reports.event_nav import EventNav, event_nav
from reports.issue_queries.models import SORTS, STATUSES, BadQuery, IssueFilter
from reports.pools import pool
from reports.release_health import RELEASE_WINDOWS, release_health, release_window
from reports.short_ids import issues_with_prefix
from reports.similar_issues import similar_issues

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(__import__("pathlib").Path(__file__).parent / "templates"))
LOGIN_CSRF = "errstream_login_csrf"
Fingerprint = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
ViewerPage = Annotated[tuple[Principal, Session], Depends(page_user("viewer"))]
MemberPage = Annotated[tuple[Principal, Session], Depends(page_user("member"))]


def _ago(t: datetime | None) -> str:
    if t is None:
        return "-"
    s = (datetime.now(UTC) - t).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(s) >= size:
            return f"{int(s // size)}{unit} ago"
    return "just now"


templates.env.filters["ago"] = _ago
templates.env.filters["crumb_time"] = breadcrumbs.crumb_time
templates.env.filters["utc"] = lambda t: t.strftime("%Y-%m-%d %H:%M:%S UTC") if t else "-"
templates.env.globals.update(sparkline=svg.sparkline, columns=svg.columns, stacked=svg.stacked_levels,
                             fold_frames=frames.fold)


def render(request: Request, name: str, who: Principal | None, session: Session | None, status: int = 200,
           **ctx: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"who": who, "csrf": session.csrf if session else "", "flash": _flash(request),
                        "nav": name.split(".")[0], **ctx}, status_code=status,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                 "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:; "
                                            "frame-ancestors 'none'; form-action 'self'"},
    )


# --- login / logout ----------------------------------------------------------------------------
def _safe_next(url: str | None) -> str:
    # Only paths of this site: "//host" and "/\\host" are other sites to a browser.
    return url if url and url.startswith("/") and not url.startswith(("//", "/\\")) and "\n" not in url else "/"


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", None, None, next=_safe_next(next), login_csrf=token, error=None)
    resp.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=web(request).settings.web_cookie_secure,
                    max_age=3600)
    return resp


@router.post("/login")
async def login(request: Request) -> Response:
    w = web(request)
    client = request.client.host if request.client else "?"
    form = await request.form()
    nxt = _safe_next(str(form.get("next") or "/"))
    cookie_token = request.cookies.get(LOGIN_CSRF) or ""
    if not cookie_token or not secrets.compare_digest(cookie_token, str(form.get("csrf_token") or "")):
        raise HTTPException(403, "missing or wrong CSRF token; reload the login page")
    wait = w.limiter.wait_seconds(client)
    if wait:
        resp = render(request, "login.html", None, None, status=429, next=nxt, login_csrf=cookie_token,
                      error=f"Too many attempts; try again in {int(wait) + 1} s.")
        resp.headers["Retry-After"] = str(int(wait) + 1)
        return resp
    who = w.tokens.verify(str(form.get("token") or ""))
    if who is None:
        return render(request, "login.html", None, None, status=401, next=nxt, login_csrf=cookie_token,
                      error="That token is not valid.")
    sid, _ = w.sessions.open(who)
    done = RedirectResponse(nxt, status_code=303)
    done.set_cookie(COOKIE, sid, httponly=True, samesite="lax", secure=w.settings.web_cookie_secure,
                    max_age=int(w.settings.web_session_hours * 3600), path="/")
    done.delete_cookie(LOGIN_CSRF)
    return done


@router.post("/logout")
async def logout(request: Request, user: ViewerPage) -> Response:
    check_form_csrf(user[1], await request.form())
    sid, _ = session_of(request)
    web(request).sessions.close(sid)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


# --- pages ---------------------------------------------------------------------------------------
def _filter_from(request: Request, who: Principal) -> tuple[IssueFilter, str, dict[str, Any], list[str]]:
    """The stream's filter from the form's selects and the search box (its ``key:value`` terms win), and notes
    for the user (a search cut to its first 200 characters); ``SearchError`` when the search cannot mean anything."""
    qp = request.query_params
    raw: dict[str, Any] = {k: qp.get(k) or None for k in ("service", "environment", "release", "level", "assignee")}
    status = [s for s in qp.getlist("status") if s] or ([] if "status" in qp else ["open"])
    sort = qp.get("sort") or "last_seen"
    query = qp.get("q") or ""
    parsed = search_syntax.parse(query, me=who.name)
    fields = {**raw, **{k: v for k, v in parsed.fields.items() if k != "status"}}
    if parsed.status is not None:
        status = parsed.status
    notes = [f"The search was shortened to its first {search_syntax.MAX_TEXT} characters."] if parsed.text_cut else []
    f = IssueFilter.model_validate({**fields, "status": status, "q": parsed.text or None})
    return f, sort, {**fields, "q": query, "status": status, "sort": sort}, notes


def _unrecorded(w: Any, issue: Any) -> Any:
    """A change this app published that ClickHouse does not show yet (it keeps milliseconds), else None."""
    p = w.pending_change(issue.fingerprint)
    recorded = getattr(issue, "status_changed_at", None)
    if p is None or (recorded is not None and p.changed_at.replace(
            microsecond=p.changed_at.microsecond // 1000 * 1000) <= recorded):
        return None
    return p


def _overlay(w: Any, issues: list[Any]) -> None:
    """Show changes this app published that the status sink has not written to ClickHouse yet."""
    for i in issues:
        p = _unrecorded(w, i)
        if p is not None:
            i.status, i.assignee = p.status, p.assignee


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, user: ViewerPage, since: str = "24h") -> HTMLResponse:
    w = web(request)
    since = since if since in ("1h", "6h", "24h", "7d", "14d") else "24h"
    o = shared_overview(w.overview, w.client, w.settings.clickhouse_database, since, None)
    report, new, q = o.report, o.new_issues, w.queries
    timeline = svg.columns([(p.start, p.events) for p in report.timeline], 1000, 150,
                           "%H:%M" if report.bucket_seconds < 86400 else "%m-%d", "events over time")
    return render(request, "overview.html", *user, report=report, per_minute=q.service_series(),
                  series_start=q.series_start(), new_issues=new, alerts=q.alerts(limit=15), since=since,
                  timeline=timeline)


@router.get("/issues", response_class=HTMLResponse)
def issue_stream(request: Request, user: ViewerPage) -> HTMLResponse:
    w = web(request)
    error, page, status = None, None, 200
    notes: list[str] = []
    try:
        f, sort, chosen, notes = _filter_from(request, user[0])
        page = w.queries.list_issues(f, sort, request.query_params.get("cursor"), 25)
    except (BadQuery, search_syntax.SearchError) as exc:
        error, status = str(exc), 400
        chosen = {"q": request.query_params.get("q") or "", "status": [], "sort": "last_seen"}
    if page:
        _overlay(w, page.issues)
    live_url = None
    if page is not None and not request.query_params.get("cursor"):  # the first page updates itself
        live = [("query", chosen["q"])] if chosen.get("q") else []
        live += [(k, chosen[k]) for k in ("service", "environment", "release", "level", "assignee") if chosen.get(k)]
        live += [("status", s) for s in chosen["status"]] + [("sort", chosen["sort"]), ("limit", "25")]
        live_url = f"/api/v1/issues?{urlencode(live)}"
    keep = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "msg", "sig")]
    next_url = f"/issues?{urlencode(keep + [('cursor', page.next_cursor)])}" if page and page.next_cursor else None
    save_query = stream_query(urlencode(keep))
    return render(request, "issues.html", *user, status=status, page=page, error=error, notes=notes, chosen=chosen,
                  saved=w.searches.list(user[0].name), save_query=save_query,
                  facets=w.queries.facets(), sorts=SORTS, statuses=("open", *STATUSES), next_url=next_url,
                  live_url=live_url,
                  here=f"/issues?{urlencode(keep)}")


@router.get("/issues/{fingerprint}", response_class=HTMLResponse)
def issue_page(request: Request, user: ViewerPage,
               fingerprint: Annotated[str, Path(pattern=r"^[0-9a-fA-F]{6,32}$")]) -> Response:
    w = web(request)
    fingerprint = fingerprint.lower()
    if len(fingerprint) < 32:  # a short id (the CLI and the report print 12 characters)
        found = issues_with_prefix(w.client, w.settings.clickhouse_database, fingerprint)
        if len(found) == 1:
            return RedirectResponse(f"/issues/{found[0]}", status_code=303)
        message = "No such issue." if not found else f"{fingerprint} names {len(found)} or more issues; add characters."
        return render(request, "error.html", *user, status=404 if not found else 400, message=message)
    # The first events and the latest event's id need only the issue's fingerprint, and the latest event and its
    # neighbours only that id: they all run beside the issue's own queries (pools of their own, since some of
    # them wait on other pools' queries). Similar issues are not on the first paint: the page loads them after
    # (``similar_page``; a link without JavaScript).
    q, db = w.queries, w.settings.clickhouse_database
    primary = q.primary_of(fingerprint)  # a merged fingerprint's page is its group's
    parts, after = pool("page-parts"), pool("page-parts-after")
    events_f = parts.submit(q.events, primary, None, 15, resolved=True)
    ends_f = parts.submit(q.ends, primary)

    def latest_id() -> str | None:
        found: str | None = ends_f.result().get("latest")
        return found

    latest_f = after.submit(lambda: q.event(i) if (i := latest_id()) else None)
    nav_f = after.submit(lambda: event_nav(w.client, db, primary, i) if (i := latest_id()) else None)
    issue = q.issue(primary, ends=ends_f, resolved=True)
    latest, nav, events = latest_f.result(), nav_f.result(), events_f.result().events
    if issue is None:
        return render(request, "error.html", *user, status=404, message="No such issue.")
    pending = _unrecorded(w, issue)
    _overlay(w, [issue])
    return render(request, "issue.html", *user, issue=issue, event=latest, events=events, pending=pending,
                  nav=nav if latest else None)


@router.get("/issues/{fingerprint}/similar", response_class=HTMLResponse)
def similar_page(request: Request, user: ViewerPage, fingerprint: Fingerprint, fragment: bool = False) -> HTMLResponse:
    """Similar issues: the issue page's section, which it loads after its first paint (``fragment=1``: the
    section alone), or a page of their own (the issue page's link without JavaScript)."""
    w = web(request)
    issue = w.queries.summary(fingerprint)  # its type, culprit and title: not the whole issue page's queries
    if issue is None:
        return render(request, "error.html", *user, status=404, message="No such issue.")
    similar = similar_issues(w.client, w.settings.clickhouse_database, issue.fingerprint, issue.exception_type,
                             issue.culprit)
    return render(request, "_similar.html" if fragment else "similar.html", *user, issue=issue, similar=similar)



def _nav(w: Any, issue: str, ev: Any) -> EventNav:
    return event_nav(w.client, w.settings.clickhouse_database, issue, ev.event_id)


@router.get("/issues/{fingerprint}/events", response_class=HTMLResponse)
def issue_events_page(request: Request, user: ViewerPage, fingerprint: Fingerprint) -> HTMLResponse:
    """Every stored event of the issue, newest first, 50 a page (the issue page shows 15)."""
    w = web(request)
    cursor = request.query_params.get("cursor")
    # the issue's name and counts (one query, not the issue page's dozen) beside the page of events, at once
    header_f = pool("page-parts").submit(w.queries.header, fingerprint)
    try:
        page = w.queries.events(fingerprint, cursor, 50)
    except BadQuery as exc:
        header_f.result()
        return render(request, "error.html", *user, status=400, message=str(exc))
    found = header_f.result()
    if found is None:
        return render(request, "error.html", *user, status=404, message="No such issue.")
    issue, stored = found
    next_url = f"/issues/{fingerprint}/events?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None
    return render(request, "issue_events.html", *user, issue=issue, stored=stored, events=page.events,
                  next_url=next_url, first=cursor is None)


@router.get("/events/{event_id}", response_class=HTMLResponse)
def event_page(request: Request, user: ViewerPage, event_id: str) -> HTMLResponse:
    import uuid

    try:
        eid = str(uuid.UUID(event_id))
    except ValueError:
        return render(request, "error.html", *user, status=404, message="No such event.")
    ev = web(request).queries.event(eid)
    if ev is None:
        return render(request, "error.html", *user, status=404, message="No such event (sampled away or expired).")
    w = web(request)
    return render(request, "event.html", *user, event=ev, nav=_nav(w, w.queries.primary_of(ev.fingerprint), ev))


@router.get("/releases", response_class=HTMLResponse)
def releases_page(request: Request, user: ViewerPage, since: str = "24h", service: str = "") -> HTMLResponse:
    w = web(request)
    since, start, hours = release_window(since)
    rows = release_health(w.client, w.settings.clickhouse_database, start, hours, service or None)
    return render(request, "releases.html", *user, releases=rows, since=since, service=service, start=start,
                  windows=list(RELEASE_WINDOWS), services=w.queries.facets().get("services", []))


@router.get("/chains", response_class=HTMLResponse)
def chains_page(request: Request, user: ViewerPage) -> HTMLResponse:
    return render(request, "chains.html", *user, chains=web(request).queries.chains(limit=50))


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, user: ViewerPage) -> HTMLResponse:
    return render(request, "alerts.html", *user, alerts=web(request).queries.alerts(limit=200))


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, user: ViewerPage) -> HTMLResponse:
    s = web(request).settings
    from stream_processors.sampling import DEFAULT_LEVEL_RATES

    return render(request, "settings.html", *user, webhooks=[d.name for d in s.alert_webhooks],
                  sample_rates={**DEFAULT_LEVEL_RATES, **s.sample_rates}, service_sample_rates=s.service_sample_rates,
                  rules=s.ownership_rules, detection={
                      "alert thresholds": ", ".join(map(str, s.alert_threshold_counts)),
                      "alert cooldown (s)": s.alert_cooldown_seconds, "spike factor": s.spike_factor,
                      "spike min count": s.spike_min_count, "chain window (s)": s.chain_window_seconds,
                      "rate limit per issue (stored/min)": s.rate_limit_per_fingerprint,
                  }, tokens=web(request).tokens.list() if user[0].can("admin") else None)


# --- saved searches (per user) ---------------------------------------------------------------------
@router.post("/searches")
async def save_search(request: Request, user: ViewerPage) -> Response:
    form = await request.form()
    check_form_csrf(user[1], form)
    try:
        saved = web(request).searches.save(user[0].name, SavedSearch(name=str(form.get("name") or "").strip(),
                                                                     query=str(form.get("query") or "")))
    except (ValidationError, SearchLimit) as exc:
        msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        return RedirectResponse(_with_msg(request, "/issues", f"Not saved: {msg}"), status_code=303)
    return RedirectResponse(_with_msg(request, saved.url, f"Saved as “{saved.name}”."), status_code=303)


@router.post("/searches/delete")
async def delete_search(request: Request, user: ViewerPage) -> Response:
    form = await request.form()
    check_form_csrf(user[1], form)
    name = str(form.get("name") or "")
    done = web(request).searches.delete(user[0].name, name)
    return RedirectResponse(_with_msg(request, "/issues", f"Deleted “{name}”." if done else "No such saved search."),
                            status_code=303)


# --- actions (forms) -----------------------------------------------------------------------------
_VERBS = {"resolve": "resolved", "ignore": "ignored", "archive": "archived until escalating", "acknowledge": "acknowledged", "investigate": "under investigation",
          "reopen": "reopened", "assign": "assigned", "unassign": "unassigned", "note": "noted", "merge": "merged",
          "unmerge": "unmerged"}


def _action_from_form(form: Any, fingerprints: list[str]) -> ActionRequest:
    def num(name: str) -> int | None:
        v = str(form.get(name) or "").strip()
        return int(v) if v.isdigit() else None

    return ActionRequest(
        action=str(form.get("action") or ""), fingerprints=fingerprints,  # type: ignore[arg-type]
        note=str(form.get("note") or ""), assignee=str(form.get("assignee") or ""),
        in_next_release=form.get("in_next_release") in ("1", "on", "true"),
        ignore_minutes=num("ignore_minutes"), ignore_until_events=num("ignore_until_events"),
        until_escalating=form.get("until_escalating") in ("1", "on", "true") and form.get("action") == "ignore",
        into=str(form.get("into") or "").strip() or None,
    )


async def _form_action(request: Request, user: tuple[Principal, Session], fingerprints: list[str],
                       back: str) -> Response:
    form = await request.form()
    check_form_csrf(user[1], form)
    try:
        req = _action_from_form(form, fingerprints)
    except (ValidationError, ValueError) as exc:
        msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        return RedirectResponse(_with_msg(request, back, f"Not done: {msg}"), status_code=303)
    if req.action in MERGE_ACTIONS:
        try:
            n = len(await web(request).apply_merge(req, user[0]))
        except MergeError as exc:
            return RedirectResponse(_with_msg(request, back, f"Not done: {exc}"), status_code=303)
    else:
        n = len(await web(request).apply(req, user[0]))
    what = f"{n} issues" if n != 1 else "Issue"
    return RedirectResponse(_with_msg(request, back, f"{what} {_VERBS[req.action]}."), status_code=303)


# Notices after an action travel in the redirect's URL, signed (a key derived from the session key): a link with
# ?msg=… made by someone else shows nothing (it read like a message from the system).
def _sign(request: Request, msg: str) -> str:
    return hmac.new(web(request).sessions.flash_key, msg.encode(), hashlib.sha256).hexdigest()[:32]


def _with_msg(request: Request, url: str, msg: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'msg': msg, 'sig': _sign(request, msg)})}"


def _flash(request: Request) -> str | None:
    msg, sig = request.query_params.get("msg"), request.query_params.get("sig") or ""
    return msg if msg and hmac.compare_digest(_sign(request, msg), sig) else None


@router.post("/issues/{fingerprint}/action")
async def issue_action(request: Request, user: MemberPage, fingerprint: Fingerprint) -> Response:
    back = (await request.form()).get("back")  # "merge into this issue" from a similar issue's row comes back there
    return await _form_action(request, user, [fingerprint], _safe_next(str(back)) if back else f"/issues/{fingerprint}")


@router.post("/issues/bulk")
async def bulk_action(request: Request, user: MemberPage) -> Response:
    form = await request.form()
    fps = [str(v) for v in form.getlist("fp") if len(str(v)) == 32]
    back = _safe_next(str(form.get("back") or "/issues"))
    if not fps:
        check_form_csrf(user[1], form)
        return RedirectResponse(_with_msg(request, back, "Select issues first."), status_code=303)
    return await _form_action(request, user, fps, back)
