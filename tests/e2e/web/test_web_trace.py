"""A stack trace with framework frames in a real headless Chromium: library frames folded, in-app only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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
