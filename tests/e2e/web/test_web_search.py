"""The search syntax on the issue stream page, in the API and typed into the search box in Chromium."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.analytics.data import fp
from tests.e2e.web.conftest import WebEnv
from tests.e2e.web.test_web_api import api, fps, login, state
from tests.support import chromium
from tests.support.services import wait_for

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("query, expected", [
    ("is:resolved", {"D"}),
    ("is:unresolved level:critical", {"B"}),
    ("is:unresolved service:checkout level:error", {"A", "G", "E"}),
    ('"database timeout"', {"B"}),
    ("is:ignored is:resolved", {"D", "F"}),
    ("env:staging", {"E"}),
    ("release:0.9.0 is:open", {"A"}),
    ("assigned:me", set()),
])
def test_the_search_syntax_in_the_api_and_on_the_page(web_env: WebEnv, query: str, expected: set[str]) -> None:
    want = {fp(x) for x in expected}
    got = api(web_env).get("/api/v1/issues", params={"query": query, "limit": 100})
    assert got.status_code == 200 and set(fps(got.json())) == want
    c, _ = login(web_env, "viewer")
    page = c.get("/issues", params={"q": query})
    assert page.status_code == 200
    shown = {f for f in (fp(x) for x in "ABCDEFG") if f'data-fp="{f}"' in page.text}
    assert shown == want


def test_a_search_that_cannot_mean_anything_says_why(web_env: WebEnv) -> None:
    r = api(web_env).get("/api/v1/issues", params={"query": "is:sleeping"})
    assert r.status_code == 400 and "is:sleeping is not a status" in r.json()["detail"]
    c, _ = login(web_env, "viewer")
    page = c.get("/issues", params={"q": "level:loud <script>"})
    assert page.status_code == 400 and "level:loud is not a level" in page.text
    assert "<script>" not in page.text  # the query is shown back escaped
    too_long = api(web_env).get("/api/v1/issues", params={"query": "x" * 2001})
    assert too_long.status_code == 422


@pytest.mark.skipif(not chromium.available(), reason="Debian's chromium and chromium-driver are not installed")
def test_typing_a_query_in_the_search_box(web_env: WebEnv, tmp_path: Path) -> None:
    pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium.chromium(tmp_path / "chrome") as d:
        chromium.log_in(d, web_env.url, web_env.tokens["viewer"])
        d.find_element(By.TAG_NAME, "body").send_keys("/")  # the shortcut focuses the search box
        box = d.switch_to.active_element
        assert box.get_attribute("id") == "q"
        box.send_keys("is:unresolved level:critical", Keys.ENTER)
        WebDriverWait(d, 20).until(lambda drv: "level%3Acritical" in drv.current_url)
        titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "table.stream a.title")]
        assert titles == ["OperationalError: database timeout"]
        assert d.find_element(By.ID, "q").get_attribute("value") == "is:unresolved level:critical"
    assert httpx.get(f"{web_env.url}/healthz").status_code == 200


def test_assigned_me_is_whoever_asks(web_env: WebEnv) -> None:
    member = api(web_env, "member")  # the token named alice
    r = member.post(f"/api/v1/issues/{fp('C')}/actions", json={"action": "assign", "assignee": "alice"})
    assert r.status_code == 200
    wait_for(lambda: state(web_env, fp("C")), lambda s: s is not None and s[2] == "alice", 60,
             "the assignment in issue_status", diagnostics=web_env.notify.output)
    mine = member.get("/api/v1/issues", params={"query": "assigned:me", "limit": 100})
    assert set(fps(mine.json())) == {fp("C")}
    assert set(fps(api(web_env, "viewer").get("/api/v1/issues", params={"query": "assigned:me"}).json())) == set()
    assert fp("C") not in fps(member.get("/api/v1/issues", params={"query": "is:unassigned", "limit": 100}).json())
    c, _ = login(web_env, "member")
    page = c.get("/issues", params={"q": "assigned:me"})
    assert f'data-fp="{fp("C")}"' in page.text and f'data-fp="{fp("A")}"' not in page.text
