"""``errstream web``: the FastAPI application, its lifespan and the uvicorn configuration.

FastAPI rather than bare Starlette (which it is built on, so the gateway's stack and
uvicorn stay the same): the REST API's parameters and responses are pydantic models,
and FastAPI turns them into validation (a clear 422) and the OpenAPI schema the API is
documented by (``/api/v1/openapi.json``, browsable at ``/api/v1/docs`` without any CDN:
the page there is our own, plain HTML).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from html import escape
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from errstream.web import api, pages
from errstream.web.auth import LoginLimiter, Sessions, TokenStore, session_key
from errstream.web.deps import NeedLogin
from errstream.web.headers import SecurityHeaders
from errstream.web.limits import UrlLengthLimit
from errstream.web.live import AlertFeed
from errstream.web.pulse import Pulse
from errstream.web.saved_searches import SavedSearches
from errstream.web.state import Unavailable, UnknownIssues, WebState
from errstream_core.settings import Settings
from producers.issue_status import StatusPublisher, merge_publisher

log = logging.getLogger("errstream.web")
HERE = Path(__file__).parent


def create_app(settings: Settings, client: Any = None, live: bool = True) -> FastAPI:
    tokens = TokenStore(settings.tokens_path)
    key = session_key(settings.session_key_path,
                      settings.web_session_key.get_secret_value() if settings.web_session_key else None)
    sessions = Sessions(settings.web_session_hours * 3600, key, tokens,
                        settings.tokens_path.with_name("web-sessions-closed.json"))
    state = WebState(
        settings=settings, client_or_none=client, tokens=tokens,
        sessions=sessions, limiter=LoginLimiter(settings.web_login_per_minute),
        publisher=StatusPublisher(settings), merge_publisher=merge_publisher(settings),
    )

    state.searches = SavedSearches(settings.tokens_path.with_name("web-saved-searches.json"))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if live:
            state.feed = AlertFeed(settings, on_new_issue=state.apply_ownership)
            state.pulse = Pulse(state.feed, lambda: state.client, settings.clickhouse_database)
            tasks = [asyncio.create_task(state.feed.run()), asyncio.create_task(state.pulse.run())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await state.publisher.stop()
            await state.merge_publisher.stop()

    app = FastAPI(title="errstream", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/api/v1/openapi.json",
                  description="Issues, events, alerts and chains from ClickHouse; changes go to the issue-status "
                              "topic. Authenticate with `Authorization: Bearer <token>` (errstream web token create).")
    app.state.web = state
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(UrlLengthLimit)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """JSON under /api/ (as before); a page elsewhere: unknown pages and CSRF failures showed raw JSON."""
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        detail = exc.detail if isinstance(exc.detail, str) else "That request cannot be answered."
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such page."
        resp = _problem(request, exc.status_code, detail, retry=False)
        resp.headers.update(exc.headers or {})
        return resp

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        """422 with where and why, never the whole input back (a 60 KB body was echoed in full)."""
        errors = [_brief(e) for e in exc.errors()[:20]]
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": errors}, status_code=422)
        where = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'request'}: {e['msg']}" for e in errors[:3])
        return _problem(request, 422, f"That address is not valid ({where}).", retry=False)

    @app.exception_handler(NeedLogin)
    async def need_login(request: Request, exc: NeedLogin) -> RedirectResponse:
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(exc.next_url, safe='/')}", status_code=303)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> Response:
        return _problem(request, 503, str(exc))

    @app.exception_handler(UnknownIssues)
    async def unknown_issues(request: Request, exc: UnknownIssues) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return _problem(request, 404, f"No such issue: {', '.join(exc.fingerprints[:5])}", retry=False)

    last_ch_warning = [0.0]

    @app.exception_handler(ClickHouseError)
    async def clickhouse_down(request: Request, exc: ClickHouseError) -> Response:
        # One line per outage (at most one per 30 s), no traceback: it is an outage, not a bug of this request.
        now = time.monotonic()
        if now - last_ch_warning[0] > 30:
            last_ch_warning[0] = now
            log.warning("web: ClickHouse query failed (%s): %s", request.url.path, str(exc).splitlines()[0][:300])
        return _problem(request, 503, "ClickHouse is not answering; try again shortly")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Alive always; ``clickhouse`` and ``alerts_feed`` (Kafka) say what the pages can reach right now."""
        feed = state.feed

        def clickhouse_answers() -> bool:
            try:
                state.client.query("SELECT 1")
            except Exception:  # noqa: BLE001 - unreachable, refused login, …: all mean "not now"
                return False
            return True

        return JSONResponse({"status": "ok", "clickhouse": await run_in_threadpool(clickhouse_answers),
                             "alerts_feed": bool(feed and feed.connected.is_set()),
                             "live_streams": len(feed.subscribers) if feed else 0,
                             "live_counts": bool(state.pulse and state.pulse.last is not None)})

    return app


def _brief(error: Any) -> dict[str, Any]:
    """A validation error without its context and with its input only when short and plain."""
    out = {k: error[k] for k in ("type", "loc", "msg") if k in error}
    value = error.get("input")
    if isinstance(value, int | float | bool) or (isinstance(value, str) and len(value) <= 100):
        out["input"] = value
    return out


def _problem(request: Request, status: int, detail: str, retry: bool = True) -> Response:
    headers = {"Retry-After": "5"} if retry else {}
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    link = '<a href="">Reload</a>' if retry else '<a href="/issues">Issues</a>'
    return HTMLResponse(f"<!doctype html><title>errstream</title><h1>{escape(detail)}</h1>"
                        f"<p>{link}</p>", status_code=status, headers=headers)


def server_config(settings: Settings, host: str | None = None, port: int | None = None, app: Any = None) -> Any:
    """The uvicorn configuration ``errstream web`` runs (loopback unless ERRSTREAM_WEB_HOST says otherwise)."""
    import uvicorn

    return uvicorn.Config(app or create_app(settings), host=host or settings.web_host, port=port or settings.web_port,
                          log_level="warning", access_log=False, server_header=False)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # aiokafka logs every failed connection attempt; the alerts feed and the publisher log state changes once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    for noisy in ("urllib3", "clickhouse_connect"):  # their retries are reported by the 503 handler's own line
        logging.getLogger(noisy).setLevel(logging.ERROR)
    uvicorn.Server(server_config(settings, host, port)).run()
