"""Walking an issue's events: oldest / older / newer / latest from an event, and the full event list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.analytics.data import fp
from tests.e2e.web.conftest import WebEnv
from tests.e2e.web.test_web_api import api, login
from tests.support import chromium

pytestmark = pytest.mark.e2e


def _all_events(env: WebEnv, issue: str) -> list[str]:
    v, out, cursor = api(env), [], None
    while True:
        page = v.get(f"/api/v1/issues/{issue}/events", params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        out += [e["event_id"] for e in page.json()["events"]]
        if not (cursor := page.json()["next_cursor"]):
            return out


@pytest.mark.parametrize("name, stored", [("B", 10), ("A", 115)])
def test_older_and_newer_visit_every_stored_event_once(web_env: WebEnv, name: str, stored: int) -> None:
    v = api(web_env)
    listed = _all_events(web_env, fp(name))
    assert len(listed) == stored
    latest = v.get(f"/api/v1/issues/{fp(name)}").json()["latest_event_id"]
    nav = v.get(f"/api/v1/events/{latest}/nav").json()
    assert nav["latest"] == latest == listed[0] and nav["oldest"] == listed[-1] and nav["newer"] is None
    assert (nav["newer_count"], nav["stored"], nav["issue"]) == (0, stored, fp(name))
    walked, current = [latest], latest
    while (current := v.get(f"/api/v1/events/{current}/nav").json()["older"]) is not None:
        walked.append(current)
    assert walked == listed
    back, current = [listed[-1]], listed[-1]
    while (current := v.get(f"/api/v1/events/{current}/nav").json()["newer"]) is not None:
        back.append(current)
    assert back == listed[::-1]
    middle = v.get(f"/api/v1/events/{listed[3]}/nav").json()
    assert (middle["newer"], middle["older"], middle["newer_count"]) == (listed[2], listed[4], 3)
    assert v.get("/api/v1/events/00000000-0000-0000-0000-000000000000/nav").status_code == 404


def test_the_full_event_list_pages_through_every_event(web_env: WebEnv) -> None:
    c, _ = login(web_env, "viewer")
    listed, seen, url = _all_events(web_env, fp("A")), [], f"/issues/{fp('A')}/events"
    while url:
        page = c.get(url)
        assert page.status_code == 200 and "115 stored of 340 events" in page.text
        seen += re.findall(r'<a href="/events/([0-9a-f-]{36})">', page.text)
        nxt = re.search(r'<a href="([^"]+)" id="next">', page.text)
        url = nxt.group(1).replace("&amp;", "&") if nxt else ""
    assert seen == listed
    assert c.get(f"/issues/{'0' * 32}/events").status_code == 404
    assert c.get(f"/issues/{fp('A')}/events", params={"cursor": "junk"}).status_code == 400


@pytest.mark.skipif(not chromium.available(), reason="Debian's chromium and chromium-driver are not installed")
def test_walking_events_in_the_browser(web_env: WebEnv, tmp_path: Path) -> None:
    pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    listed = _all_events(web_env, fp("B"))
    with chromium.chromium(tmp_path / "chrome") as d:
        chromium.log_in(d, web_env.url, web_env.tokens["viewer"])
        d.get(f"{web_env.url}/issues/{fp('B')}")
        assert "event 1 of 10 stored" in d.find_element(By.ID, "event-nav").text

        def click(link: str, expect: str) -> None:
            d.find_element(By.ID, link).click()
            WebDriverWait(d, 20).until(lambda drv: drv.current_url.endswith(f"/events/{expect}"))

        click("nav-older", listed[1])
        assert "event 2 of 10 stored" in d.find_element(By.ID, "event-nav").text
        assert "OperationalError" in d.find_element(By.ID, "stacktrace").text
        click("nav-oldest", listed[-1])
        assert not d.find_elements(By.ID, "nav-older")  # the oldest has none older
        click("nav-newer", listed[-2])
        click("nav-latest", listed[0])
        d.find_element(By.ID, "nav-all").click()
        WebDriverWait(d, 20).until(lambda drv: drv.find_elements(By.ID, "event-list"))
        assert len(d.find_elements(By.CSS_SELECTOR, "#event-list tbody tr")) == 10


def test_the_issue_page_says_which_figures_come_from_the_sample(web_env: WebEnv) -> None:
    c, _ = login(web_env, "viewer")
    sampled = c.get(f"/issues/{fp('A')}").text
    assert "From the 115 stored events of 340 (a sample" in sampled and "340</b>events (115 stored)" in sampled
    assert "From all 10 events." in c.get(f"/issues/{fp('B')}").text
