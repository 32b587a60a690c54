"""A WSGI app instrumented with the unmodified `sentry-sdk`, sending everything a careless team would.

Everything on (``send_default_pii=True`` on 2.x, ``data_collection`` on 3.x): the SDK forwards cookies, the Authorization header, the
client's address and the user; the app's errors carry connection URLs with passwords
and e-mail addresses. Whatever of that is secret must not reach Kafka or ClickHouse.

Run as ``python -c "from tests.support.apps import sentry_web; sentry_web.main(DSN, RELEASE)"``; it prints
the compression the SDK chose (``br`` when ``brotli`` is importable, else ``gzip``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware

from tests.support.apps.sentry_options import everything_a_careless_team_sends

REDIS_URL = "redis://:hunter22@cache:6379/0"
DATABASE_URL = "postgres://admin:s3cretpw@db.internal.example.com:5432/app"


def checkout(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    sentry_sdk.add_breadcrumb(category="cache", message=f"connecting to {REDIS_URL}", level="info",
                              data={"url": REDIS_URL, "password": "hunter2"})
    raise ConnectionError(f"{REDIS_URL} refused the connection")


def main(dsn: str, release: str) -> None:
    sentry_sdk.init(dsn=dsn, release=release, environment="staging", traces_sample_rate=0.0,
                    **everything_a_careless_team_sends())
    transport = sentry_sdk.get_client().transport
    print("compression:", getattr(transport, "_compression_algo", None), flush=True)
    sentry_sdk.set_user({"id": "u-7", "username": "ada", "email": "ada@example.com"})
    sentry_sdk.set_context("database", {"url": DATABASE_URL, "pool": 5})
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/checkout", "QUERY_STRING": "password=hunter2&page=2",
        "SERVER_NAME": "shop.example.com", "SERVER_PORT": "443", "wsgi.url_scheme": "https",
        "REMOTE_ADDR": "203.0.113.5", "HTTP_HOST": "shop.example.com", "HTTP_USER_AGENT": "shop-client/1.0",
        "HTTP_AUTHORIZATION": "Bearer secret-token-123", "HTTP_COOKIE": "session=abc123session",
        "HTTP_X_API_KEY": "key-xyz-987", "HTTP_X_REQUEST_ID": "req-7f3a", "wsgi.input": None,
    }
    try:
        list(SentryWsgiMiddleware(checkout)(environ, lambda *a: None))
    except ConnectionError:
        pass  # the middleware reported it
    sentry_sdk.capture_message(f"login failed for ada@example.com via {DATABASE_URL}", level="fatal")
    sentry_sdk.flush(10)
