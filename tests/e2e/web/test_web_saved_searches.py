"""Saved searches, per user: in the API, through the page's form (CSRF), and clicked in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.analytics.data import fp
from tests.e2e.web.conftest import WebEnv
from tests.e2e.web.test_web_api import api, login
from tests.support import chromium

pytestmark = pytest.mark.e2e


def test_saved_searches_are_per_user_and_bounded(web_env: WebEnv) -> None:
    vera, alice = api(web_env, "viewer"), api(web_env, "member")
    r = vera.post("/api/v1/searches", json={"name": "critical", "query": "q=is%3Aunresolved+level%3Acritical&cursor=x"})
    assert r.status_code == 200 and r.json() == {"name": "critical", "query": "q=is%3Aunresolved+level%3Acritical"}
    assert [s["name"] for s in vera.get("/api/v1/searches").json()] == ["critical"]
    assert alice.get("/api/v1/searches").json() == []  # another user's
    path = web_env.settings.tokens_path.with_name("web-saved-searches.json")
    assert path.stat().st_mode & 0o777 == 0o600
    for i in range(49):
        assert vera.post("/api/v1/searches", json={"name": f"s{i}", "query": "sort=events"}).status_code == 200
    full = vera.post("/api/v1/searches", json={"name": "one too many", "query": ""})
    assert full.status_code == 400 and "at most 50" in full.json()["detail"]
    assert vera.post("/api/v1/searches", json={"name": "x" * 101, "query": ""}).status_code == 422
    for i in range(49):
        assert vera.delete(f"/api/v1/searches/s{i}").status_code == 204
    assert vera.delete("/api/v1/searches/s0").status_code == 404


def test_the_page_saves_with_csrf_and_lists_them(web_env: WebEnv) -> None:
    c, csrf = login(web_env, "member")
    assert c.post("/searches", data={"name": "billing", "query": "service=billing"}).status_code == 403  # no CSRF
    r = c.post("/searches", data={"name": "billing <b>", "query": "service=billing&status=", "csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"].startswith("/issues?service=billing&status=&msg=")
    page = c.get("/issues")
    assert 'href="/issues?service=billing&amp;status="' in page.text and "billing &lt;b&gt;" in page.text
    r = c.post("/searches/delete", data={"name": "billing <b>", "csrf_token": csrf})
    assert r.status_code == 303 and "billing &lt;b&gt;" not in c.get("/issues").text


@pytest.mark.skipif(not chromium.available(), reason="Debian's chromium and chromium-driver are not installed")
def test_save_and_use_a_search_in_the_browser(web_env: WebEnv, tmp_path: Path) -> None:
    pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium.chromium(tmp_path / "chrome") as d:
        chromium.log_in(d, web_env.url, web_env.tokens["admin"])
        d.get(f"{web_env.url}/issues?q=is%3Aunresolved+level%3Acritical")
        d.find_element(By.ID, "save-name").send_keys("on fire")
        d.find_element(By.ID, "save").click()
        WebDriverWait(d, 20).until(lambda drv: "Saved as" in drv.page_source)
        d.get(f"{web_env.url}/issues")
        d.find_element(By.LINK_TEXT, "on fire").click()
        WebDriverWait(d, 20).until(lambda drv: "level%3Acritical" in drv.current_url)
        rows = d.find_elements(By.CSS_SELECTOR, "table.stream tr.row")
        assert [r.get_attribute("data-fp") for r in rows] == [fp("B")]
        assert re.search(r"is:unresolved level:critical", d.find_element(By.ID, "q").get_attribute("value") or "")
