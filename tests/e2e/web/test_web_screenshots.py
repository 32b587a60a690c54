"""Every page in headless Chromium, rendered and photographed (the pictures in docs/web.md).

Screenshots go to ``$ERRSTREAM_TEST_ARTIFACTS/web-screenshots`` (or the test's tmp dir); with
``ERRSTREAM_DOCS_SCREENSHOTS=docs/img/web`` they replace the documentation's pictures.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sinks.clickhouse.sessions_sink import SESSION_COLUMNS
from tests.e2e.analytics.data import fp
from tests.e2e.web.conftest import WebEnv
from tests.e2e.web.test_web_api import api
from tests.support import chromium

pytestmark = pytest.mark.e2e
if not chromium.available():
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)
pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402


def test_every_page_renders_in_chromium(web_env: WebEnv, tmp_path: Path) -> None:
    minute = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0, tzinfo=None)
    web_env.ch.insert(f"{web_env.settings.clickhouse_database}.session_aggregates_in", [
        [minute + timedelta(minutes=20 * k), "checkout", "production", rel, n, 0, c, 0, [], [], list(range(u)), []]
        for k, (rel, n, c, u) in enumerate([("1.0.0", 400, 6, 120), ("0.9.0", 50, 0, 20), ("1.0.0", 300, 2, 90)])
    ], column_names=SESSION_COLUMNS, settings={"insert_deduplication_token": "screenshots"})
    event = api(web_env).get(f"/api/v1/issues/{fp('A')}").json()["latest_event_id"]
    pages = {
        "overview": "/",
        "stream": "/issues",
        "stream-search": "/issues?q=is%3Aunresolved+service%3Acheckout+level%3Aerror",
        "issue": f"/issues/{fp('A')}",
        "issue-events": f"/issues/{fp('A')}/events",
        "event": f"/events/{event}",
        "releases": "/releases",
        "alerts": "/alerts",
        "chains": "/chains",
        "settings": "/settings",
    }
    out = Path(os.environ.get("ERRSTREAM_DOCS_SCREENSHOTS") or chromium.screenshot_dir(tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    with chromium.chromium(tmp_path / "chrome") as d:
        d.set_window_size(1280, 900)
        chromium.log_in(d, web_env.url, web_env.tokens["member"])
        for name, path in pages.items():
            d.get(web_env.url + path)
            assert d.find_element(By.TAG_NAME, "h1").text, name
            assert not d.find_elements(By.CSS_SELECTOR, "p.error"), name
            d.save_screenshot(str(out / f"{name}.png"))
            print(f"screenshot: {out / name}.png")
