"""Request → principal: bearer tokens for the API, the session cookie for browsers (and the API from pages).

No route is anonymous except the login form, its POST and ``/healthz``. A request
without credentials gets 401 (API) or the login page (pages); one with too small a
role gets 403. A cookie-authenticated request that changes something must carry the
session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``), else 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request

from errstream.web.auth import Principal, Role, Session, csrf_ok
from errstream.web.state import WebState

COOKIE = "errstream_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def web(request: Request) -> WebState:
    return request.app.state.web  # type: ignore[no-any-return]


def session_of(request: Request) -> tuple[str | None, Session | None]:
    sid = request.cookies.get(COOKIE)
    return sid, web(request).sessions.get(sid)  # None too once its token is revoked


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization") or ""
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


def identify(request: Request) -> tuple[Principal | None, Session | None]:
    token = bearer(request)
    if token is not None:
        return web(request).tokens.verify(token), None
    _, session = session_of(request)
    return (session.principal if session else None), session


def api_user(role: Role = "viewer") -> Callable[[Request], Any]:
    async def dependency(request: Request) -> Principal:
        who, session = identify(request)
        if who is None and bearer(request) is not None:
            # A wrong token: guesses are limited per client address like logins (shared budget), so a token
            # cannot be found faster over the API than through the login form.
            wait = web(request).limiter.wait_seconds(request.client.host if request.client else "?")
            if wait:
                raise HTTPException(429, f"too many wrong tokens; try again in {int(wait) + 1} s",
                                    headers={"Retry-After": str(int(wait) + 1)})
        if who is None:
            raise HTTPException(401, "authentication required: Authorization: Bearer <token>, or log in",
                                headers={"WWW-Authenticate": "Bearer"})
        if not who.can(role):
            raise HTTPException(403, f"this needs the {role} role; {who.name} is {who.role}")
        if session is not None and request.method not in SAFE_METHODS:
            if not csrf_ok(session, request.headers.get("x-csrf-token")):
                raise HTTPException(403, "missing or wrong CSRF token (X-CSRF-Token header)")
        return who

    return dependency


class NeedLogin(Exception):
    """A page asked for without a session: the app's handler sends the browser to the login form."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def page_user(role: Role = "viewer") -> Callable[[Request], Any]:
    async def dependency(request: Request) -> tuple[Principal, Session]:
        _, session = session_of(request)
        if session is None:
            raise NeedLogin(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
        if not session.principal.can(role):
            raise HTTPException(403, f"this needs the {role} role")
        return session.principal, session

    return dependency


def check_form_csrf(session: Session, form: Any) -> None:
    if not csrf_ok(session, form.get("csrf_token")):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")
