"""The overview is shared and recomputed within its refresh interval; its counts stay exact as of a stated time."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from errstream.web.app import create_app, server_config
from tests.e2e.analytics.data import Burst, _event, insert_batch
from tests.e2e.web.conftest import WebEnv
from tests.support.asgi import serving
from tests.support.services import wait_for

pytestmark = pytest.mark.e2e


def _write(env: WebEnv, n: int) -> None:
    """``n`` events of issue D within the minute that ended a minute ago (inside a window that ends now),
    as the sink writes them."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    insert_batch(env.ch, env.settings.clickhouse_database,
                 [_event(Burst("D", "checkout", "error", timedelta(0), n, users=1, minutes=1), i, start)
                  for i in range(n)], f"overview/{uuid.uuid4()}")


@contextmanager
def _app(env: WebEnv, refresh: float, max_age: float) -> Iterator[httpx.Client]:
    s = env.settings.model_copy(update={"web_overview_refresh_seconds": refresh,
                                        "web_overview_max_age_seconds": max_age})
    with serving(lambda port: server_config(s, "127.0.0.1", port, app=create_app(s, live=False)),
                 "overview-web") as url:
        yield httpx.Client(base_url=url, headers={"Authorization": f"Bearer {env.tokens['viewer']}"}, timeout=30)


def _overview(c: httpx.Client) -> dict[str, Any]:
    r = c.get("/api/v1/overview", params={"since": "1h"})
    assert r.status_code == 200
    report: dict[str, Any] = r.json()["report"]
    return report


def test_a_recent_overview_is_served_until_its_refresh_brings_the_exact_new_counts(web_env: WebEnv) -> None:
    with _app(web_env, refresh=1.0, max_age=60.0) as c:
        first = _overview(c)
        _write(web_env, 7)
        again = _overview(c)  # younger than the maximum age: the same overview, as of the same time
        assert (again["window_end"], again["overview"]["events"]) == (first["window_end"], first["overview"]["events"])
        later = wait_for(lambda: _overview(c), lambda o: o["window_end"] != first["window_end"], 30,
                         "a recomputed overview")
        assert later["window_end"] > first["window_end"]
        assert later["overview"]["events"] == first["overview"]["events"] + 7  # exact, not estimated


def test_refresh_zero_computes_the_overview_on_every_request(web_env: WebEnv) -> None:
    with _app(web_env, refresh=0.0, max_age=0.0) as c:
        before = _overview(c)["overview"]["events"]
        _write(web_env, 3)
        assert _overview(c)["overview"]["events"] == before + 3


def test_the_overview_page_says_as_of_when(web_env: WebEnv) -> None:
    c = httpx.Client(base_url=web_env.url, timeout=30)
    form = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    assert c.post("/login", data={"csrf_token": token, "token": web_env.tokens["viewer"], "next": "/"}).status_code == 303
    page = c.get("/").text
    as_of = re.search(r'as of <span id="as-of">(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC</span>', page)
    assert as_of is not None
    stated = datetime.strptime(as_of.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert timedelta(0) <= datetime.now(UTC) - stated < timedelta(seconds=web_env.settings.web_overview_max_age_seconds + 5)
