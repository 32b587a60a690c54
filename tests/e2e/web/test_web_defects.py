"""The numbered defects of issue 26, items 2-4, and the live stream's bounded lifetime (item 1's server half).

Each test failed before its fix: a long search was a plain-text 500 and an oversize URL got no clear
answer; actions on issues that do not exist succeeded and published records; an issue resolved "in the
next release" that saw more events of its current release was listed under ``regressed`` but shown as
``resolved``; a live stream was held as long as the browser kept it.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from errstream.web.app import create_app, server_config
from tests.e2e.analytics.data import Burst, _event, fp, insert_batch
from tests.e2e.web.conftest import WebEnv
from tests.e2e.web.test_web_api import api, fps, login, state
from tests.support.asgi import serving
from tests.support.services import wait_for

pytestmark = pytest.mark.e2e
UNKNOWN = "0" * 32


def test_a_long_search_is_a_page_with_a_reason_not_a_500(web_env: WebEnv) -> None:
    c, _ = login(web_env, "viewer")
    pasted = "KeyError: 'cart_id' " * 20  # 400 characters: a pasted error message
    r = c.get("/issues", params={"q": pasted})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "shortened to its first 200 characters" in r.text
    assert "KeyError: &#39;cart_id&#39;" in r.text  # the search ran on the first 200 characters and found it


@pytest.mark.parametrize("path", ["/issues?q=", "/alerts?x=", "/api/v1/issues?q="])
def test_an_oversize_url_gets_a_quick_414(web_env: WebEnv, path: str) -> None:
    c, _ = login(web_env, "viewer")
    start = time.monotonic()
    r = c.get(path + "a" * 12_000)
    assert r.status_code == 414 and time.monotonic() - start < 2.0
    assert "too long" in r.text
    if path.startswith("/api/"):
        assert r.json()["detail"].startswith("request URL too long")
    else:
        assert r.headers["content-type"].startswith("text/html") and "<h1>" in r.text


def _published_since(env: WebEnv, mark: float) -> list[bytes]:
    """Every record on the issue-status topic since ``mark`` (epoch seconds), read from the broker itself."""
    import asyncio

    async def read() -> list[bytes]:
        consumer = AIOKafkaConsumer(env.settings.topic_issue_status, **env.settings.kafka_client_kwargs(),
                                    group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            out: list[bytes] = []
            while batches := await consumer.getmany(timeout_ms=2000):
                out += [r.value for rs in batches.values() for r in rs if r.timestamp >= mark * 1000 and r.value]
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_actions_on_unknown_issues_are_404_and_publish_nothing(web_env: WebEnv) -> None:
    m = api(web_env, "member")
    mark = time.time()
    r = m.post(f"/api/v1/issues/{UNKNOWN}/actions", json={"action": "resolve"})
    assert r.status_code == 404 and UNKNOWN in r.json()["detail"]
    bulk = m.post("/api/v1/issues/actions", json={"action": "resolve", "fingerprints": [fp("D"), UNKNOWN]})
    assert bulk.status_code == 404 and bulk.json()["detail"] == f"no such issue: {UNKNOWN}"
    c, csrf = login(web_env, "member")
    form = c.post(f"/issues/{UNKNOWN}/action", data={"action": "resolve", "csrf_token": csrf})
    assert form.status_code == 404 and "No such issue" in form.text
    assert not any(UNKNOWN.encode() in v or fp("D").encode() in v for v in _published_since(web_env, mark))
    assert state(web_env, UNKNOWN) is None
    assert UNKNOWN not in fps(api(web_env).get("/api/v1/issues", params={"limit": 100}).json())


def test_resolved_in_next_release_reads_resolved_in_every_filter(web_env: WebEnv) -> None:
    name = f"R{uuid.uuid4().hex[:6]}"
    from tests.e2e.analytics import data

    data.ISSUES[name] = ("RuntimeError", f"RuntimeError: {name}", "orders.sync in push")
    try:
        burst = Burst(name, "orders", "error", timedelta(hours=1), 3, users=1, minutes=3, release="2.0.0")
        start = datetime.now(UTC) - burst.ago
        insert_batch(web_env.ch, web_env.settings.clickhouse_database,
                     [_event(burst, i, start) for i in range(burst.n)], f"{name}/1")
        m = api(web_env, "member")
        issue = fp(name)
        assert m.post(f"/api/v1/issues/{issue}/actions",
                      json={"action": "resolve", "in_next_release": True}).status_code == 200
        wait_for(lambda: state(web_env, issue), lambda s: s is not None and s[0] == "resolved", 60,
                 "the resolution in issue_status", diagnostics=web_env.notify.output)
        # More events of the same release after the resolution: not a regression.
        later = Burst(name, "orders", "error", timedelta(seconds=-5), 2, users=1, minutes=1, release="2.0.0")
        insert_batch(web_env.ch, web_env.settings.clickhouse_database,
                     [_event(later, i, datetime.now(UTC) + timedelta(seconds=5)) for i in range(later.n)], f"{name}/2")
        wait_for(lambda: m.get(f"/api/v1/issues/{issue}").json()["events"], lambda n: n == 5, 30, "the later events")

        def listed(status: str) -> dict[str, str]:
            page = m.get("/api/v1/issues", params={"status": status, "service": "orders", "limit": 100}).json()
            return {i["fingerprint"]: i["status"] for i in page["issues"]}

        assert m.get(f"/api/v1/issues/{issue}").json()["status"] == "resolved"
        assert listed("resolved") == {issue: "resolved"}
        assert issue not in listed("regressed") and issue not in listed("open")
        c, _ = login(web_env, "viewer")
        assert fp(name) not in c.get("/issues", params={"service": "orders"}).text  # the default view: open ones
        assert fp(name) in c.get("/issues", params={"service": "orders", "status": "resolved"}).text
    finally:
        data.ISSUES.pop(name, None)


def test_a_live_stream_ends_after_its_lifetime_and_says_when_to_reconnect(web_env: WebEnv) -> None:
    short = web_env.settings.model_copy(update={"web_stream_seconds": 1.0})
    with serving(lambda port: server_config(short, "127.0.0.1", port, app=create_app(short)), "web-short-streams",
                 lambda h: bool(h["alerts_feed"]), timeout=60) as url:
        start = time.monotonic()
        headers = {"Authorization": f"Bearer {web_env.tokens['viewer']}"}
        with httpx.stream("GET", f"{url}/api/v1/stream", headers=headers, timeout=30) as r:
            body = b"".join(r.iter_raw())
        assert r.status_code == 200 and body.startswith(b"retry: 2000")
        assert time.monotonic() - start < 10  # ended by the server, not by the client's timeout
        assert httpx.get(f"{url}/healthz").json()["live_streams"] == 0
