"""ASGI middleware: one isolated scope per request with its method, URL, headers and trace ids.

Exceptions escaping the app are reported (``handled=False``) and re-raised so
the server still answers 500 and logs as before. Trace ids come from W3C
``traceparent`` or Sentry's ``sentry-trace`` header, the correlation id from
``x-request-id`` / ``x-correlation-id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from producers.integrations.request_info import request_fields
from producers.scope import isolated_scope
from producers.sdk import Client, get_client

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class ErrstreamASGIMiddleware:
    def __init__(self, app: ASGIApp, client: Client | None = None, *, track_requests: bool = True) -> None:
        """``track_requests``: count HTTP requests per minute (ok / errored = 5xx / crashed) for error rates."""
        self.app = app
        self._client = client
        self.track_requests = track_requests

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host") or ":".join(str(p) for p in scope.get("server") or ("localhost",))
        url = f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{scope.get('path', '')}"
        query = (scope.get("query_string") or b"").decode("latin-1")
        with isolated_scope(**request_fields(scope.get("method", "GET"), url, query, headers)):
            status: list[int] = []

            async def recording_send(message: Any) -> None:
                if message.get("type") == "http.response.start":
                    status[:] = [int(message.get("status") or 0)]
                await send(message)

            client = self._client or get_client()
            track = self.track_requests and scope.get("type") == "http"
            try:
                await self.app(scope, receive, recording_send if track else send)
            except Exception as exc:
                if client is not None:
                    client.capture_exception(exc, handled=False, mechanism="asgi")
                    if track:
                        client.record_request("crashed")
                raise
            if client is not None and track:
                client.record_request("errored" if status and status[0] >= 500 else "ok")
