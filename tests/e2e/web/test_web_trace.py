"""A stack trace with framework frames in a real headless Chromium: library frames folded, in-app only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from producers.gateway.sentry_typed import convert_sentry_payload
from schemas.fast import encode
from stream_processors.event_processor import EventProcessor
from tests.e2e.analytics import data
from tests.e2e.analytics.data import Burst, _event, fp, insert_batch
from tests.e2e.web.conftest import WebEnv
from tests.support import chromium

pytestmark = pytest.mark.e2e
if not chromium.available():
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)
pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402

# outermost call first, as stored: a framework around the app's view, raising inside a library
STACK = [("gunicorn.workers", "handle", False), ("flask.app", "dispatch", False), ("flask.app", "full_dispatch", False),
         ("shop.views", "checkout", True), ("requests.sessions", "send", False), ("urllib3.pool", "urlopen", False),
         ("urllib3.connection", "connect", False)]


def test_library_frames_are_folded_and_can_be_hidden(web_env: WebEnv, tmp_path: Path) -> None:
    name = "TRACE"
    data.ISSUES[name] = ("ConnectionError", "ConnectionError: refused", "shop.views in checkout")
    try:
        p = _event(Burst(name, "shop", "error", timedelta(0), 1, users=1), 0,
                   datetime.now(UTC))
        p["event"]["exceptions"][0]["stacktrace"] = [
            {"module": m, "function": fn, "lineno": 10 + i, "in_app": app} for i, (m, fn, app) in enumerate(STACK)]
        at = datetime.fromisoformat(p["event"]["timestamp"])
        p["event"]["breadcrumbs"] = [{"timestamp": at.timestamp() - 1.5, "category": "http", "message": "POST /pay"}]
        insert_batch(web_env.ch, web_env.settings.clickhouse_database, [p], "trace-test")
        with chromium.chromium(tmp_path / "chrome") as d:
            chromium.log_in(d, web_env.url, web_env.tokens["viewer"])
            d.get(f"{web_env.url}/events/{p['event']['event_id']}")
            crumb = d.find_element(By.XPATH, "//td[following-sibling::td[text()='http']]").text
            assert crumb.endswith("(−1.5 s)") and crumb.startswith(f"{at - timedelta(seconds=1.5):%H:%M:%S}")
            trace = d.find_element(By.ID, "stacktrace")
            visible = [e.text.split(" at line")[0] for e in trace.find_elements(By.CSS_SELECTOR, "li.frame")
                       if e.is_displayed()]
            # innermost first: the raising frame, then 2 library frames folded, the view, 3 framework frames folded
            assert visible == ["urllib3.connection in connect", "shop.views in checkout"]
            assert [s.text for s in trace.find_elements(By.CSS_SELECTOR, "details.libs > summary")] == [
                "2 library frames", "3 library frames"]
            d.find_element(By.ID, "unfold").click()
            assert sum(e.is_displayed() for e in trace.find_elements(By.CSS_SELECTOR, "li.frame")) == 7
            d.save_screenshot(str(chromium.screenshot_dir(tmp_path) / "event-trace.png"))
            d.find_element(By.ID, "inapp-only").click()
            shown = [e.text for e in trace.find_elements(By.CSS_SELECTOR, "li.frame") if e.is_displayed()]
            assert len(shown) == 1 and shown[0].startswith("shop.views in checkout")
            d.get(f"{web_env.url}/issues/{fp(name)}")  # the issue page folds the same way
            assert len(d.find_elements(By.CSS_SELECTOR, "#stacktrace details.libs")) == 2
    finally:
        data.ISSUES.pop(name, None)


def test_source_lines_and_scrubbed_locals_as_the_sdk_sent_them(web_env: WebEnv, tmp_path: Path) -> None:
    # a Sentry payload through the gateway's conversion and the worker's processing (scrubbing), then stored
    frames: list[dict[str, Any]] = [
        {"module": "shop.views", "function": "checkout", "lineno": 41, "in_app": True,
         "pre_context": ["def checkout(request):", "    cart = load(request)"],
         "context_line": "    total = pay(cart, card)", "post_context": ["    return total"],
         "vars": {"cart": "{'id': 7}", "db_password": "'hunter2'", "note": "'<script>alert(1)</script>'"}},
        {"module": "requests.sessions", "function": "send", "lineno": 120, "in_app": False,
         "context_line": "r = adapter.send(request)", "vars": {"timeout": "30"}},
    ]
    payload = {"event_id": uuid.uuid4().hex, "level": "error", "timestamp": datetime.now(UTC).timestamp(),
               "exception": {"values": [{"type": "CardDeclined", "value": "card declined",
                                         "stacktrace": {"frames": frames}}]}}
    event = convert_sentry_payload(orjson.dumps(payload), service="shop")
    out = EventProcessor().process(encode(event), received_at=datetime.now(UTC)).processed
    assert out is not None
    insert_batch(web_env.ch, web_env.settings.clickhouse_database, [orjson.loads(encode(out))], "context-test")
    with chromium.chromium(tmp_path / "chrome") as d:
        chromium.log_in(d, web_env.url, web_env.tokens["viewer"])
        d.get(f"{web_env.url}/events/{event.event_id}")
        trace = d.find_element(By.ID, "stacktrace")
        app = trace.find_element(By.CSS_SELECTOR, "li.frame.in-app")
        lib = trace.find_element(By.CSS_SELECTOR, "li.frame.lib")
        lines = [e.text for e in app.find_elements(By.CSS_SELECTOR, "pre.src .ln")]
        assert lines == ["39def checkout(request):", "40    cart = load(request)", "41    total = pay(cart, card)",
                         "42    return total"]
        assert app.find_element(By.CSS_SELECTOR, "pre.src .ln.here").text.startswith("41")
        local = {r.find_element(By.TAG_NAME, "th").text: r.find_element(By.TAG_NAME, "td").text
                 for r in app.find_elements(By.CSS_SELECTOR, "details.vars[open] table.vars tr")}
        assert local == {"cart": "{'id': 7}", "db_password": "[Filtered]", "note": "'<script>alert(1)</script>'"}
        assert "hunter2" not in d.page_source and "<script>alert(1)" not in d.page_source  # scrubbed, escaped
        d.save_screenshot(str(chromium.screenshot_dir(tmp_path) / "event-context.png"))
        # the library frame (the raising one, so shown) keeps its locals folded until asked for
        lib_vars = lib.find_element(By.CSS_SELECTOR, "details.vars")
        assert lib_vars.get_attribute("open") is None
        lib_vars.find_element(By.TAG_NAME, "summary").click()
        assert lib_vars.find_element(By.CSS_SELECTOR, "table.vars td").text == "30"
