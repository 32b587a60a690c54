"""Stream rows show level, environments and releases; the page fits an 800 px window (Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.analytics.data import fp
from tests.e2e.web.conftest import WebEnv
from tests.e2e.web.test_web_api import api
from tests.support import chromium

pytestmark = pytest.mark.e2e


def test_the_api_lists_releases(web_env: WebEnv) -> None:
    page = api(web_env).get("/api/v1/issues", params={"limit": 100}).json()
    releases = {i["fingerprint"]: i["releases"] for i in page["issues"]}
    assert releases[fp("A")] == ["0.9.0", "1.0.0"] and releases[fp("E")] == ["1.0.0", "1.1.0"]


@pytest.mark.skipif(not chromium.available(), reason="Debian's chromium and chromium-driver are not installed")
def test_rows_say_level_environment_and_release_and_fit_800px(web_env: WebEnv, tmp_path: Path) -> None:
    pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By

    with chromium.chromium(tmp_path / "chrome") as d:
        chromium.log_in(d, web_env.url, web_env.tokens["member"])
        meta = d.find_element(By.CSS_SELECTOR, f'tr.row[data-fp="{fp("E")}"] div.small').text
        assert meta.startswith("error ") and "production, staging" in meta and "1.0.0, 1.1.0" in meta
        d.set_window_size(800, 900)
        d.get(f"{web_env.url}/issues?status=")
        # the document never scrolls sideways: a wide table scrolls inside its own box
        assert d.execute_script("var e = document.documentElement; return e.scrollWidth <= e.clientWidth")
