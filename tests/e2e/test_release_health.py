"""Error rates on the real stack: requests and sessions are the denominator, true error counts the numerator.

Two apps, as users run them: a WSGI app with errstream's middleware, and a WSGI app with the unmodified
sentry-sdk and its automatic session tracking, sending through the gateway. Both must give the error rate
the requests really had, in ClickHouse's v_error_rate and v_release_health.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import GatewayProject, Settings
from producers.integrations.wsgi import ErrstreamWSGIMiddleware
from producers.sdk import Client as SdkClient
from reports.report import build_report
from tests.support.alerts import query_rows
from tests.support.gateway import running_gateway
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def notify(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    svc = Service("notify", settings, tmp_path).start()
    yield svc
    svc.stop()


def _rate(ch: Client, settings: Settings, service: str) -> list[tuple[Any, ...]]:
    return query_rows(ch, f"SELECT release, sum(sessions), sum(errored_sessions), sum(errors) "
                          f"FROM {settings.clickhouse_database}.v_error_rate WHERE service = {{s:String}} "
                          f"GROUP BY release", {"s": service})


def shop(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO")
    if path == "/crash":
        raise KeyError("basket")
    if path == "/unavailable":
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"down"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_errstream_middleware_gives_the_true_error_rate(
    settings: Settings, ch: Client, services: dict[str, Service], notify: Service
) -> None:
    client = SdkClient("checkout", release="2.4.0", environment="production", settings=settings)
    app = ErrstreamWSGIMiddleware(shop, client)
    paths = ["/"] * 15 + ["/unavailable"] * 3 + ["/crash"] * 2
    for path in paths:
        environ: dict[str, Any] = {"PATH_INFO": path}
        setup_testing_defaults(environ)
        try:
            list(app(environ, lambda *a: None))
        except KeyError:
            pass
    assert client.flush(10)
    rows = wait_for(lambda: _rate(ch, settings, "checkout"), lambda r: bool(r) and r[0][1] == 20 and r[0][3] == 2, 120,
                    "20 requests and 2 errors in v_error_rate",
                    diagnostics=lambda: notify.output()[-2000:] + services["sink"].output()[-2000:])
    # 20 requests; 5 errored (3 answered 503, 2 crashed); 2 error events (the crashes)
    assert rows == [("2.4.0", 20, 5, 2)]
    health = query_rows(ch, f"SELECT sum(sessions), sum(crashed_sessions), min(crash_free_sessions_pct) "
                            f"FROM {settings.clickhouse_database}.v_release_health WHERE service = 'checkout'")
    assert health == [(20, 2, 90.0)]
    report = build_report(ch, settings.clickhouse_database, "2h", "checkout")  # what `errstream report` shows
    assert [(h.release, h.sessions, h.errored_sessions, h.errors, h.error_rate_pct, h.crash_free_sessions_pct)
            for h in report.release_health] == [("2.4.0", 20, 5, 2, 25.0, 90.0)]
    client.close()


def test_unmodified_sentry_sdk_session_tracking_gives_the_error_rate(
    settings: Settings, ch: Client, services: dict[str, Service], notify: Service
) -> None:
    settings.gateway_projects = {"7": GatewayProject(public_key="shopkey7", service="shop")}
    with running_gateway(settings) as url:
        dsn = url.replace("http://", "http://shopkey7@") + "/7"
        run = subprocess.run([sys.executable, "-m", "tests.support.apps.sentry_wsgi_sessions", dsn, "9", "3"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        rows = wait_for(lambda: _rate(ch, settings, "shop"), lambda r: bool(r) and r[0][1] == 12 and r[0][3] == 3, 120,
                        "12 sessions and 3 errors in v_error_rate",
                        diagnostics=lambda: notify.output()[-2000:] + services["sink"].output()[-2000:])
    assert rows == [("shop@3.1.0", 12, 3, 3)]
