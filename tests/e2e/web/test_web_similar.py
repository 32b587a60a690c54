"""Similar issues from the grouping components, and merging one into the issue with one click (Chromium)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.analytics import data
from tests.e2e.analytics.data import Burst, _event, fp, insert_batch
from tests.e2e.web.conftest import WebEnv
from tests.e2e.web.test_web_api import api
from tests.support import chromium
from tests.support.services import wait_for

pytestmark = pytest.mark.e2e
STACKS = {  # outermost first; S1 and S2 share the type and 2 of 3 frames, S3 only the type
    "S1": ["orders.api.create", "orders.pay.charge", "orders.pay.retry"],
    "S2": ["orders.api.create", "orders.pay.charge", "orders.pay.refund"],
    "S3": ["search.index.rebuild"],
}


def _issues(env: WebEnv, tag: str) -> dict[str, str]:
    out = {}
    for name, stack in STACKS.items():
        key = f"{name}{tag}"
        data.ISSUES[key] = ("TimeoutError", f"TimeoutError: {key}", "orders.pay in charge")
        p: dict[str, Any] = _event(Burst(key, "orders", "error", timedelta(0), 1, users=1), 0,
                                   datetime.now(UTC) - timedelta(minutes=1))
        p["event"]["exceptions"][0]["stacktrace"] = [
            {"module": m.rsplit(".", 1)[0], "function": m.rsplit(".", 1)[1], "lineno": 1, "in_app": True}
            for m in stack]
        insert_batch(env.ch, env.settings.clickhouse_database, [p], f"similar/{key}")
        out[name] = fp(key)
    return out


def test_similar_issues_say_what_they_share(web_env: WebEnv) -> None:
    tag = uuid.uuid4().hex[:4]
    fps = _issues(web_env, tag)
    got = api(web_env).get(f"/api/v1/issues/{fps['S1']}/similar").json()
    assert [s["fingerprint"] for s in got] == [fps["S2"]]  # S3 shares only the exception type: 1 of 5
    (s2,) = got
    assert s2["score"] == 0.6 and s2["shared"] == [
        "frame:orders.api.create", "frame:orders.pay.charge", "type:TimeoutError"]
    assert (s2["only_here"], s2["only_there"]) == (1, 1)
    assert api(web_env).get(f"/api/v1/issues/{'0' * 32}/similar").status_code == 404


@pytest.mark.skipif(not chromium.available(), reason="Debian's chromium and chromium-driver are not installed")
def test_merge_a_similar_issue_with_one_click(web_env: WebEnv, tmp_path: Path) -> None:
    pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    tag = uuid.uuid4().hex[:4]
    fps = _issues(web_env, tag)
    with chromium.chromium(tmp_path / "chrome") as d:
        chromium.log_in(d, web_env.url, web_env.tokens["viewer"])
        d.get(f"{web_env.url}/issues/{fps['S1']}")
        # loaded after the page's first paint, into the page (it is not reloaded)
        d.execute_script("document.body.setAttribute('data-marker', '1')")
        WebDriverWait(d, 30).until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "#similar[data-loaded]"))
        assert "S2" in d.find_element(By.ID, "similar").text and "60 % alike" in d.find_element(By.ID, "similar").text
        assert d.find_element(By.TAG_NAME, "body").get_attribute("data-marker") == "1"
        assert not d.find_elements(By.CSS_SELECTOR, "button.merge-into")  # a viewer cannot merge
    with chromium.chromium(tmp_path / "chrome-member") as d:
        chromium.log_in(d, web_env.url, web_env.tokens["member"])
        d.get(f"{web_env.url}/issues/{fps['S1']}")
        WebDriverWait(d, 30).until(lambda drv: drv.find_elements(
            By.CSS_SELECTOR, f'tr.similar[data-fp="{fps["S2"]}"] button.merge-into'))
        d.find_element(By.CSS_SELECTOR, f'tr.similar[data-fp="{fps["S2"]}"] button.merge-into').click()
        WebDriverWait(d, 30).until(lambda drv: "Issue merged." in drv.page_source)
        assert d.current_url.split("?")[0].endswith(f"/issues/{fps['S1']}")
        d.save_screenshot(str(chromium.screenshot_dir(tmp_path) / "similar-merged.png"))
    members = wait_for(lambda: api(web_env).get(f"/api/v1/issues/{fps['S1']}").json()["members"],
                       lambda m: fps["S2"] in m, 60, "S2 merged into S1", diagnostics=web_env.notify.output)
    assert set(members) == {fps["S1"], fps["S2"]}


def test_without_javascript_the_issue_page_links_to_its_similar_issues(web_env: WebEnv) -> None:
    """The issue page's first paint has no similar issues; its link opens them as a page of their own, and the
    section alone is what the page's script loads after."""
    from tests.e2e.web.test_web_api import login

    tag = uuid.uuid4().hex[:4]
    fps = _issues(web_env, tag)
    c, _ = login(web_env, "member")
    issue = c.get(f"/issues/{fps['S1']}").text
    assert f'href="/issues/{fps["S1"]}/similar"' in issue and "% alike" not in issue
    page = c.get(f"/issues/{fps['S1']}/similar")
    assert page.status_code == 200 and "<html" in page.text and "60 % alike" in page.text
    assert f'data-fp="{fps["S2"]}"' in page.text and f'data-fp="{fps["S3"]}"' not in page.text
    assert 'class="merge-into"' in page.text  # a member merges from there too
    section = c.get(f"/issues/{fps['S1']}/similar", params={"fragment": "1"})
    assert section.status_code == 200 and "<html" not in section.text and "60 % alike" in section.text
    assert c.get(f"/issues/{'0' * 32}/similar").status_code == 404
    assert c.get(f"/issues/{fps['S1']}/similar", params={"fragment": "<script>"}).status_code in (400, 422)
