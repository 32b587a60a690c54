"""Requests too large to be a real page or API call get a quick, clear 414 before any route runs.

A URL of 12 KB (a pasted stack trace in the search box, a crafted link) reached the routes, which
either failed deep inside (a plain-text 500) or left the browser waiting. Browsers and proxies
commonly cap URLs at 8 KB too, so nothing legitimate is refused: the longest filter URL the app
builds (every filter, a 200-character search, a cursor) is well under 2 KB.
"""

from __future__ import annotations

from html import escape

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_URL_BYTES = 8 * 1024  # path + query string, as sent (percent-encoded)


class UrlLengthLimit:
    """Pure ASGI middleware (no body buffering, streaming responses untouched): 414 for oversize request targets."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_URL_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        size = len(raw_path) + len(scope.get("query_string") or b"")
        if size <= self.max_bytes:
            await self.app(scope, receive, send)
            return
        reason = f"request URL too long: {size} bytes, at most {self.max_bytes}"
        if scope["path"].startswith("/api/"):
            body, ctype = orjson.dumps({"detail": reason}), b"application/json"
        else:
            body = (f"<!doctype html><title>URL too long · errstream</title><h1>That address is too long</h1>"
                    f"<p>{escape(reason)}. Shorten the search (at most 200 characters are searched).</p>"
                    '<p><a href="/issues">Issues</a></p>').encode()
            ctype = b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": 414,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                                (b"cache-control", b"no-store"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
