"""WSGI middleware: the synchronous twin of the ASGI one (same request context, same re-raise)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from producers.integrations.request_info import request_fields
from producers.scope import isolated_scope
from producers.sdk import Client, get_client

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ErrstreamWSGIMiddleware:
    def __init__(self, app: WSGIApp, client: Client | None = None, *, track_requests: bool = True) -> None:
        """``track_requests``: count requests per minute (ok / errored = 5xx / crashed) for error rates."""
        self.app = app
        self._client = client
        self.track_requests = track_requests

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        host = headers.get("host") or environ.get("SERVER_NAME", "localhost")
        url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{environ.get('SCRIPT_NAME', '')}" \
              f"{environ.get('PATH_INFO', '')}"
        with isolated_scope(**request_fields(environ.get("REQUEST_METHOD", "GET"), url,
                                             environ.get("QUERY_STRING", ""), headers)):
            status: list[int] = []

            def recording_start_response(status_line: str, *args: Any) -> Any:
                status[:] = [int(status_line.split(" ", 1)[0]) if status_line[:3].isdigit() else 0]
                return start_response(status_line, *args)

            client = self._client or get_client()
            try:
                # Materialise so exceptions raised while iterating the body are caught inside the scope.
                body = list(self.app(environ, recording_start_response))
            except Exception as exc:
                if client is not None:
                    client.capture_exception(exc, handled=False, mechanism="wsgi")
                    if self.track_requests:
                        client.record_request("crashed")
                raise
            if client is not None and self.track_requests:
                client.record_request("errored" if status and status[0] >= 500 else "ok")
            return body
