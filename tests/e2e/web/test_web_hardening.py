"""Issue 26, item 5: headers, error pages, short ids, signed notices, bounded 422s, limited token guessing."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.analytics.data import ALERT_COLUMNS, fp
from tests.e2e.web.conftest import WebEnv
from tests.e2e.web.test_web_api import api, login
from tests.support.services import wait_for
from tests.support.web import running_web

pytestmark = pytest.mark.e2e


def test_every_response_says_nosniff_and_same_origin_and_the_api_no_store(web_env: WebEnv) -> None:
    c, _ = login(web_env, "viewer")
    for r in (api(web_env).get("/api/v1/issues"), api(web_env).get("/api/v1/nope"), c.get("/issues"),
              httpx.get(f"{web_env.url}/login"), httpx.get(f"{web_env.url}/static/web.js")):
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["referrer-policy"] == "same-origin", r.url
    assert api(web_env).get("/api/v1/issues").headers["cache-control"] == "no-store"
    assert api(web_env).get("/api/v1/me").headers["cache-control"] == "no-store"


def test_unknown_pages_and_csrf_failures_are_pages_not_json(web_env: WebEnv) -> None:
    c, _ = login(web_env, "member")
    r = c.get("/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html") and "No such page" in r.text
    r = c.post(f"/issues/{fp('B')}/action", data={"action": "acknowledge"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html") and "CSRF" in r.text
    r = c.get("/issues/not-hex")
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert api(web_env).get("/api/v1/nope").json() == {"detail": "Not Found"}  # the API stays JSON


def test_a_short_id_opens_its_issue(web_env: WebEnv) -> None:
    c, _ = login(web_env, "viewer")
    r = c.get(f"/issues/{fp('B')[:12]}")
    assert r.status_code == 303 and r.headers["location"] == f"/issues/{fp('B')}"
    assert c.get(f"/issues/{fp('B')[:12].upper()}").headers["location"] == f"/issues/{fp('B')}"
    missing = c.get("/issues/ffffff000000")
    assert missing.status_code == 404 and "No such issue" in missing.text


def test_a_notice_in_the_url_is_shown_only_when_the_app_made_it(web_env: WebEnv) -> None:
    c, csrf = login(web_env, "member")
    forged = c.get("/issues", params={"msg": "Your session expired: log in at evil.example"})
    assert "evil.example" not in forged.text and 'class="flash"' not in forged.text
    done = c.post(f"/issues/{fp('C')}/action", data={"action": "note", "note": "seen", "csrf_token": csrf})
    assert done.status_code == 303
    assert '<p class="flash" role="status">Issue noted.</p>' in c.get(done.headers["location"]).text


def test_a_422_does_not_echo_a_huge_input(web_env: WebEnv) -> None:
    m = api(web_env, "member")
    r = m.post("/api/v1/issues/actions", json={"action": "note", "note": "x" * 60_000, "fingerprints": [fp("B")]})
    assert r.status_code == 422 and len(r.content) < 2_000
    assert r.json()["detail"][0]["loc"] == ["body", "note"]


def test_viewers_get_no_checkboxes(web_env: WebEnv) -> None:
    c, _ = login(web_env, "viewer")
    assert 'name="fp"' not in c.get("/issues").text
    m, _ = login(web_env, "member")
    assert 'name="fp"' in m.get("/issues").text


def test_the_spikes_box_lists_spikes_only_and_the_service_charts_have_axes_and_an_hour(web_env: WebEnv) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    web_env.ch.insert(f"{web_env.settings.clickhouse_database}.alerts", [[
        uuid.uuid5(uuid.NAMESPACE_OID, "threshold-B"), "threshold", "warning", f"threshold:billing:{fp('B')}:100",
        now - timedelta(hours=1), "billing", fp("B"), "100 events reached", "", uuid.UUID(int=0),
        now - timedelta(hours=1), "{}"]], column_names=ALERT_COLUMNS)
    c, _ = login(web_env, "viewer")
    page = c.get("/").text
    box = page[page.index('id="spikes"'):page.index("</table>", page.index('id="spikes"'))]
    assert "<h2>Spikes</h2>" in page and ">spike<" in box and f'href="/issues/{fp("A")}"' in box
    assert "threshold" not in box and "100 events reached" in page  # the threshold is in the alerts feed only
    # each service's chart: an hour of minutes on its time axis (0 and 15-minute ticks), counts on the other
    charts = re.findall(r'<svg class="chart" role="img" aria-label="events per minute by level[^"]*".*?</svg>',
                        page, re.S)
    assert charts, "no per-service chart"
    for chart in charts:
        times = re.findall(r'text-anchor="(?:start|middle)">(\d\d:\d\d)</text>', chart)
        assert len(times) == 4, times
        first = datetime.strptime(times[0], "%H:%M")
        assert [(datetime.strptime(t, "%H:%M") - first).seconds // 60 for t in times] == [0, 15, 30, 45]
        assert re.findall(r'text-anchor="end">([\d,]+)</text>', chart)[0] == "0"
        widths = {float(w) for w in re.findall(r'<rect [^>]*width="([\d.]+)"', chart)}
        assert widths and max(widths) < 10, widths  # a minute is a sixtieth of the width, not all of it


def test_a_login_survives_a_restart_of_the_web_app_and_a_logout_ends_it(web_env: WebEnv) -> None:
    c, csrf = login(web_env, "member")
    cookies = dict(c.cookies)
    # a new web app process on the same home (a restart), with the browser's cookie: still logged in, and the
    # CSRF token of the page loaded before the restart still works
    with running_web(web_env.settings, wait_for_feed=False) as url:
        after = httpx.Client(base_url=url, cookies=cookies, timeout=30, follow_redirects=False)
        page = after.get("/issues")
        assert page.status_code == 200 and "alice" in page.text
        done = after.post(f"/issues/{fp('C')}/action", data={"action": "note", "note": "after restart",
                                                             "csrf_token": csrf})
        assert done.status_code == 303 and "/login" not in done.headers["location"]
        assert after.post("/logout", data={"csrf_token": csrf}).status_code == 303
    # logged out in one process is logged out in every one, restarts included
    again = httpx.Client(base_url=web_env.url, cookies=cookies, timeout=30, follow_redirects=False)
    r = again.get("/issues")
    assert r.status_code in (302, 303, 307) and "/login" in r.headers["location"]
    key_file = web_env.settings.session_key_path
    assert key_file.exists() and key_file.stat().st_mode & 0o777 == 0o600


def test_wrong_bearer_tokens_are_rate_limited_per_client(web_env: WebEnv) -> None:
    # Last in this file: it spends the per-address budget that logins share, and a login right after it
    # (another test's) could find the bucket empty.
    anon = httpx.Client(base_url=web_env.url, timeout=30)
    codes = [anon.get("/api/v1/me", headers={"Authorization": f"Bearer est_guess_{i}"}).status_code
             for i in range(40)]
    assert codes[0] == 401 and 429 in codes
    limited = anon.get("/api/v1/me", headers={"Authorization": "Bearer est_guess_x"})
    assert limited.status_code in (401, 429)
    # the right token still works from the same address, and the limit lifts by itself (logins share it)
    assert api(web_env).get("/api/v1/me").status_code == 200
    wait_for(lambda: anon.get("/api/v1/me", headers={"Authorization": "Bearer est_guess_y"}).status_code,
             lambda code: code == 401, 30, "the guess limit to lift")
    # logins share that limit, and the guess just above took the attempt that had come back: the next one
    # comes back with the bucket's refill, so a browser's login succeeds once it has
    wait_for(lambda: _login_status(web_env, "viewer"), lambda code: code == 303, 30, "a login to be let through")


def _login_status(env: WebEnv, role: str) -> int:
    c = httpx.Client(base_url=env.url, timeout=30, follow_redirects=False)
    form = c.get("/login")
    if form.status_code != 200:
        return form.status_code
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return c.post("/login", data={"csrf_token": token.group(1), "token": env.tokens[role], "next": "/issues"}).status_code
