"""WSGI middleware: the synchronous twin of the ASGI one (same request context, same re-raise)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from producers.integrations.request_info import request_fields
from producers.scope import isolated_scope
from producers.sdk import Client, get_client

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ErrstreamWSGIMiddleware:
    def __init__(self, app: WSGIApp, client: Client | None = None) -> None:
        self.app = app
        self._client = client

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        host = headers.get("host") or environ.get("SERVER_NAME", "localhost")
        url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{environ.get('SCRIPT_NAME', '')}" \
              f"{environ.get('PATH_INFO', '')}"
        with isolated_scope(**request_fields(environ.get("REQUEST_METHOD", "GET"), url,
                                             environ.get("QUERY_STRING", ""), headers)):
            try:
                # Materialise so exceptions raised while iterating the body are caught inside the scope.
                return list(self.app(environ, start_response))
            except Exception as exc:
                client = self._client or get_client()
                if client is not None:
                    client.capture_exception(exc, handled=False, mechanism="wsgi")
                raise
