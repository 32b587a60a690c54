"""errstream's own SDK sends source lines and locals, and they reach the event page; a password never leaves.

An exception raised in a real module (``tests/support/apps/checkout_locals.py``) is captured by the SDK,
goes through Kafka, the real worker and sink to ClickHouse, and is read back from the web app's API and
its event page. The password is built at run time (it is in no source line) and held in a local named
``password``: it is ``[Filtered]`` on the raw topic already, with the SDK's scrubbing on and off.
"""

from __future__ import annotations

import linecache
import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client

from errstream.web.auth import TokenStore
from errstream_core.settings import Settings
from producers.sdk import Client as SdkClient
from tests.support.apps import checkout_locals
from tests.support.kafka import read_topic
from tests.support.services import Service, wait_for
from tests.support.web import running_web

pytestmark = pytest.mark.e2e
PASSWORD = checkout_locals.secret()
MODULE = checkout_locals.__file__


def _send(settings: Settings, release: str, **options: Any) -> str:
    client = SdkClient("checkout", release=release, settings=settings, resources=False, **options)
    try:
        event_id = checkout_locals.checkout(client)
        assert event_id and client.flush(30), client.stats
        return event_id
    finally:
        client.close()


def _frame(event: dict[str, Any], function: str) -> dict[str, Any]:
    (frame,) = [f for f in event["exceptions"][-1]["stacktrace"] if f["function"] == function]
    return frame


def _source(lineno: int) -> str:
    return linecache.getline(MODULE, lineno).rstrip("\n")


def _like_source(lines: list[str], numbers: range) -> bool:
    return len(lines) == len(numbers) and all(
        got == _source(n) or "password" in _source(n) for got, n in zip(lines, numbers, strict=True))


def test_source_lines_and_locals_reach_the_event_page_and_a_password_never_leaves(
    settings: Settings, ch: Client, services: dict[str, Service], tmp_path: Path
) -> None:
    sent = _send(settings, "scrubbed")
    raw_sent = _send(settings, "raw", scrub=False)
    _send(settings, "bare", source_context=False, include_locals=False)
    topic = read_topic(settings, settings.topic_errors, expect=3, timeout=60)
    assert PASSWORD not in orjson.dumps(topic).decode()  # not even with the SDK's scrubbing off
    by_release = {e["release"]: e for e in topic}
    for release in ("scrubbed", "raw"):
        charge = _frame(by_release[release], "charge")
        assert charge["vars"]["password"] == "[Filtered]"
        assert charge["vars"]["attempts"] == "3" and charge["vars"]["card"] == "'visa'"
    bare = _frame(by_release["bare"], "charge")
    assert not bare.get("vars") and not bare.get("pre_context") and bare["context_line"]  # the opt-outs

    def stored() -> list[Any]:
        try:
            return list(ch.query(f"SELECT release FROM {settings.clickhouse_database}.error_events").result_rows)
        except Exception:  # the sink creates the tables on start
            return []

    rows = wait_for(stored, lambda r: len(r) >= 3, 120, "3 events stored", diagnostics=services["sink"].output)
    assert len(rows) == 3
    token = TokenStore(settings.tokens_path).create("vera", "viewer")
    with running_web(settings, wait_for_feed=False) as url:
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        for event_id in (sent, raw_sent):
            r = api.get(f"/api/v1/events/{event_id}")
            assert r.status_code == 200, r.text
            assert PASSWORD not in r.text
            frames = {f["function"]: f for f in r.json()["exceptions"][-1]["frames"]}
            charge = frames["charge"]
            line = charge["lineno"]
            assert charge["context_line"] == _source(line)
            # the module's own lines, five either side (a line naming the password is scrubbed by the worker)
            assert _like_source(charge["pre_context"], range(line - 5, line))
            assert _like_source(charge["post_context"], range(line + 1, line + 6))
            assert charge["vars"]["password"] == "[Filtered]"
            assert charge["vars"]["total"] == "14"
            assert frames["checkout"]["vars"]["cart"].startswith("{'id': 7, 'items': [{")  # the caller's locals too
        page = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
        form = page.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        assert page.post("/login", data={"csrf_token": csrf, "token": token, "next": "/"}).status_code == 303
        html = page.get(f"/events/{sent}").text
        assert PASSWORD not in html
        assert "[Filtered]" in html and "card declined after" in html
        assert '<span class="ln here">' in html and "attempts = 3" in html  # the source around the raising line
