"""A WSGI app instrumented with the unmodified sentry-sdk and its automatic session tracking.

Run in its own process (``python -m tests.support.apps.sentry_wsgi_sessions DSN OK ERRORS``): it serves
OK successful requests and ERRORS that raise, through sentry-sdk's WSGI middleware (request-mode
sessions), then closes the SDK, which flushes the session aggregates to the DSN.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults

import sentry_sdk
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/fail":
        raise ZeroDivisionError("basket total divided by zero items")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def main(dsn: str, ok: int, errors: int) -> None:
    sentry_sdk.init(dsn=dsn, release="shop@3.1.0", environment="staging", auto_session_tracking=True,
                    traces_sample_rate=0.0)
    wrapped = SentryWsgiMiddleware(app)
    for i in range(ok + errors):
        environ: dict[str, Any] = {"PATH_INFO": "/fail" if i < errors else "/"}
        setup_testing_defaults(environ)
        try:
            list(wrapped(environ, lambda *a: None))
        except ZeroDivisionError:
            pass
    sentry_sdk.get_client().close(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
