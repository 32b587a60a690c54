"""The release health page and API: sessions, crash-free sessions and users, adoption and exact errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sinks.clickhouse.sessions_sink import SESSION_COLUMNS
from tests.e2e.web.conftest import WebEnv
from tests.e2e.web.test_web_api import api
from tests.support import chromium

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sessions(web_env: WebEnv) -> None:
    """Sessions as the sessions sink writes them: 1.0.0 has 90 (3 crashed, 2 of 20 users), 0.9.0 has 10."""
    minute = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0, tzinfo=None)
    rows = [
        [minute, "checkout", "production", "1.0.0", 60, 0, 2, 0, [], [], list(range(1, 16)), [1]],
        [minute + timedelta(minutes=61), "checkout", "production", "1.0.0", 30, 0, 1, 0, [], [],
         list(range(10, 21)), [2]],
        [minute, "checkout", "production", "0.9.0", 10, 0, 0, 0, [], [], list(range(30, 35)), []],
    ]
    web_env.ch.insert(f"{web_env.settings.clickhouse_database}.session_aggregates_in", rows,
                      column_names=SESSION_COLUMNS, settings={"insert_deduplication_token": "releases-test"})


def test_release_health_in_the_api(web_env: WebEnv, sessions: None) -> None:
    got = {(r["service"], r["environment"], r["release"]): r
           for r in api(web_env).get("/api/v1/releases", params={"since": "24h"}).json()}
    new = got[("checkout", "production", "1.0.0")]
    assert (new["sessions"], new["crashed_sessions"], new["users"], new["crashed_users"]) == (90, 3, 20, 2)
    assert (new["crash_free_sessions_pct"], new["crash_free_users_pct"], new["adoption_pct"]) == (96.67, 90.0, 90.0)
    assert new["errors"] == 450  # A's 300 and G's 150 in the last 24 h: true counts, not the stored sample
    assert sum(new["sessions_per_hour"]) == 90 and len(new["sessions_per_hour"]) == 24
    old = got[("checkout", "production", "0.9.0")]
    assert (old["sessions"], old["adoption_pct"], old["crash_free_users_pct"], old["errors"]) == (10, 10.0, 100.0, 0)
    billing = got[("billing", "production", "1.0.0")]  # errors but no session tracking: no rates
    assert billing["errors"] == 10 and billing["sessions"] == 0 and billing["crash_free_sessions_pct"] is None
    week = {(r["service"], r["release"]) for r in api(web_env).get("/api/v1/releases", params={"since": "7d"}).json()}
    assert ("checkout", "0.9.0") in week
    only = api(web_env).get("/api/v1/releases", params={"service": "billing"}).json()
    assert {r["service"] for r in only} == {"billing"}
    assert api(web_env).get("/api/v1/releases", params={"since": "1y"}).status_code == 422


@pytest.mark.skipif(not chromium.available(), reason="Debian's chromium and chromium-driver are not installed")
def test_the_releases_page_in_the_browser(web_env: WebEnv, sessions: None, tmp_path: Path) -> None:
    pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium.chromium(tmp_path / "chrome") as d:
        chromium.log_in(d, web_env.url, web_env.tokens["viewer"])
        d.find_element(By.LINK_TEXT, "Releases").click()
        WebDriverWait(d, 20).until(lambda drv: drv.find_elements(By.ID, "releases"))
        first = d.find_element(By.CSS_SELECTOR, "#releases tr.release")
        assert first.get_attribute("data-release") == "1.0.0"
        for text in ("checkout", "90.0 %", "96.67 %", "90.00 %", "450"):
            assert text in first.text, text
        shots = chromium.screenshot_dir(tmp_path)
        d.save_screenshot(str(shots / "releases.png"))
        first.find_element(By.TAG_NAME, "a").click()  # to the stream of that release
        WebDriverWait(d, 20).until(lambda drv: "/issues?" in drv.current_url)
        titles = {e.text for e in d.find_elements(By.CSS_SELECTOR, "table.stream a.title")}
        assert "KeyError: 'cart_id'" in titles and "OperationalError: database timeout" not in titles
