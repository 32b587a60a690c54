"""The REST API against the known history, the real broker and embedded ClickHouse.

Reads: filters, sorts, cursor pagination, counts and sparklines, issue detail, events.
Changes: every action reaches ``issue_status`` (through the topic and the real status sink) with who made it.
Auth: 401 without credentials, 403 for too small a role or a missing CSRF token, login rate limit.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from errstream.web.app import create_app, server_config
from errstream_core.settings import Settings
from schemas.alerts import AlertEvent
from tests.e2e.analytics.data import fp
from tests.e2e.web.conftest import WebEnv
from tests.support.asgi import serving
from tests.support.services import wait_for

pytestmark = pytest.mark.e2e


def api(env: WebEnv, role: str = "viewer") -> httpx.Client:
    return httpx.Client(base_url=env.url, headers={"Authorization": f"Bearer {env.tokens[role]}"}, timeout=30)


def fps(page: dict[str, Any]) -> list[str]:
    return [i["fingerprint"] for i in page["issues"]]


def state(env: WebEnv, fingerprint: str) -> Any:
    rows = env.ch.query(
        "SELECT toString(status), changed_by, assignee, action, note, ignore_until_events, ignore_events_baseline,"
        " resolved_in_next_release, ignore_until IS NOT NULL FROM issue_status FINAL WHERE fingerprint = {fp:String}",
        parameters={"fp": fingerprint}).result_rows
    return rows[0] if rows else None


def test_no_anonymous_access_and_roles(web_env: WebEnv) -> None:
    anon = httpx.Client(base_url=web_env.url, timeout=30)
    r = anon.get("/api/v1/issues")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert anon.get("/api/v1/issues", headers={"Authorization": "Bearer est_nope_nope"}).status_code == 401
    tampered = web_env.tokens["admin"][:-2] + ("aa" if not web_env.tokens["admin"].endswith("aa") else "bb")
    assert anon.get("/api/v1/me", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401
    page = anon.get("/issues", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/issues"
    assert anon.get("/api/v1/openapi.json").status_code == 200  # the schema itself is public documentation

    viewer = api(web_env, "viewer")
    assert viewer.get("/api/v1/me").json() == {"name": "vera", "role": "viewer"}
    r = viewer.post(f"/api/v1/issues/{fp('A')}/actions", json={"action": "resolve"})
    assert r.status_code == 403 and "member" in r.json()["detail"]
    assert api(web_env, "member").get("/api/v1/tokens").status_code == 403
    listed = api(web_env, "admin").get("/api/v1/tokens").json()
    assert {t["name"] for t in listed} >= {"vera", "alice", "root"} and all("sha256" not in t for t in listed)
    assert web_env.settings.tokens_path.stat().st_mode & 0o777 == 0o600
    assert web_env.tokens["member"] not in web_env.settings.tokens_path.read_text()  # stored hashed


def login(env: WebEnv, role: str) -> tuple[httpx.Client, str]:
    """A browser-like session: the login form's CSRF cookie and field, then the session cookie."""
    c = httpx.Client(base_url=env.url, timeout=30, follow_redirects=False)
    form = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    r = c.post("/login", data={"csrf_token": token, "token": env.tokens[role], "next": "/issues"})
    assert r.status_code == 303 and r.headers["location"] == "/issues"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = c.get("/issues")
    csrf = re.search(r'data-csrf="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return c, csrf


def test_browser_session_needs_csrf_on_every_change(web_env: WebEnv) -> None:
    c = httpx.Client(base_url=web_env.url, timeout=30, follow_redirects=False)
    c.get("/login")
    r = c.post("/login", data={"csrf_token": "forged", "token": web_env.tokens["member"]})
    assert r.status_code == 403  # login form without its CSRF token
    c, csrf = login(web_env, "member")
    target = fp("C")
    assert c.post(f"/issues/{target}/action", data={"action": "acknowledge"}).status_code == 403
    assert c.post(f"/issues/{target}/action", data={"action": "acknowledge", "csrf_token": "x" * 43}).status_code == 403
    assert c.post(f"/api/v1/issues/{target}/actions", json={"action": "acknowledge"}).status_code == 403
    assert c.post("/logout").status_code == 403
    assert state(web_env, target) is None or state(web_env, target)[0] != "acknowledged"
    ok = c.post(f"/api/v1/issues/{target}/actions", json={"action": "note", "note": "seen"},
                headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    # C was resolved and came back (regressed): a note must not re-resolve it — it is recorded as open
    noted = wait_for(lambda: state(web_env, target), lambda s: s is not None and s[3] == "note", 60, "the note",
                     diagnostics=web_env.notify.output)
    assert (noted[0], noted[1], noted[4]) == ("new", "alice", "seen")
    assert c.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert c.get("/issues").status_code == 303  # the session is gone


def test_login_is_rate_limited_per_client(web_env: WebEnv) -> None:
    strict = web_env.settings.model_copy(update={"web_login_per_minute": 3.0})  # burst 5, then 1 per 20 s
    with serving(lambda port: server_config(strict, "127.0.0.1", port, app=create_app(strict, live=False)),
                 "strict-web") as url:
        c = httpx.Client(base_url=url, timeout=30)
        form = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        codes = [c.post("/login", data={"csrf_token": token, "token": "est_0000_guess"}).status_code
                 for _ in range(6)]
        assert codes == [401] * 5 + [429]
        limited = c.post("/login", data={"csrf_token": token, "token": web_env.tokens["member"]})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1  # even the right token waits
        assert "Too many attempts" in limited.text


def test_filters_sorts_and_counts(web_env: WebEnv) -> None:
    v = api(web_env)
    every = v.get("/api/v1/issues", params={"limit": 100}).json()
    assert sorted(fps(every)) == sorted(fp(k) for k in "ABCDEFG")  # no status filter through the API = all
    assert set(fps(v.get("/api/v1/issues", params={"service": "billing"}).json())) == {fp("B"), fp("E")}
    assert set(fps(v.get("/api/v1/issues", params={"level": "critical"}).json())) == {fp("B"), fp("D")}
    assert fps(v.get("/api/v1/issues", params={"environment": "staging"}).json()) == [fp("E")]
    assert set(fps(v.get("/api/v1/issues", params={"release": "0.9.0"}).json())) == {fp("A")}
    assert fps(v.get("/api/v1/issues", params={"q": "CART_ID"}).json()) == [fp("A")]  # case-insensitive title
    assert fps(v.get("/api/v1/issues", params={"q": "payments gateway"}).json()) == [fp("G")]
    opened = set(fps(v.get("/api/v1/issues", params={"status": "open", "limit": 100}).json()))
    # D resolved, F ignored; C and E resolved but seen again since → regressed, hence open
    assert opened == {fp(k) for k in "ABCEG"}
    assert set(fps(v.get("/api/v1/issues", params={"status": ["ignored", "resolved"]}).json())) == {fp("D"), fp("F")}
    now = web_env.ds.now
    recent = {"first_seen_from": (now - timedelta(hours=7)).isoformat()}
    assert set(fps(v.get("/api/v1/issues", params=recent).json())) == {fp("B"), fp("G")}
    stale = {"last_seen_to": (now - timedelta(days=2)).isoformat()}
    assert set(fps(v.get("/api/v1/issues", params=stale).json())) == {fp("D"), fp("F")}
    window = {"first_seen_from": (now - timedelta(days=11)).isoformat(),
              "first_seen_to": (now - timedelta(days=2)).isoformat()}
    assert set(fps(v.get("/api/v1/issues", params=window).json())) == {fp("D"), fp("F")}
    assert v.get("/api/v1/issues", params={"last_seen_from": "yesterday"}).status_code == 422
    by_events = fps(v.get("/api/v1/issues", params={"sort": "events", "limit": 3}).json())
    assert by_events == [fp("A"), fp("G"), fp("C")]
    assert fps(v.get("/api/v1/issues", params={"sort": "users", "limit": 1}).json()) == [fp("G")]
    assert fps(v.get("/api/v1/issues", params={"sort": "first_seen", "limit": 1}).json())[0] in {fp("E"), fp("B")}
    a = next(i for i in every["issues"] if i["fingerprint"] == fp("A"))
    assert (a["events"], a["events_24h"], a["events_14d"]) == (340, 300, 340)
    assert len(a["series_24h"]) == 24 and sum(a["series_24h"]) == 300 and len(a["series_14d"]) == 14
    assert v.get("/api/v1/issues", params={"sort": "loudness"}).status_code == 400
    assert v.get("/api/v1/issues", params={"level": "loud"}).status_code == 400
    assert v.get("/api/v1/issues", params={"cursor": "!!"}).status_code == 400
    assert v.get("/api/v1/issues", params={"limit": 1000}).status_code == 422


@pytest.mark.parametrize("sort", ["last_seen", "events", "users", "trend", "first_seen"])
def test_cursor_pagination_visits_every_issue_once(web_env: WebEnv, sort: str) -> None:
    v = api(web_env)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = v.get("/api/v1/issues", params={"sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += fps(page.json())
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    whole = fps(v.get("/api/v1/issues", params={"sort": sort, "limit": 100}).json())
    assert seen == whole and len(set(seen)) == 7


def test_issue_detail_events_and_one_event(web_env: WebEnv) -> None:
    v = api(web_env)
    a = v.get(f"/api/v1/issues/{fp('A')}").json()
    assert (a["title"], a["events"], a["stored"], a["users"]) == ("KeyError: 'cart_id'", 340, 75 + 40, 20)
    assert (a["first_release"], a["last_release"]) == ("0.9.0", "1.0.0")
    assert {t["value"] for t in a["tags"]["release"]} == {"0.9.0", "1.0.0"}
    assert [al["kind"] for al in a["alerts"]] == ["spike"]
    assert [c["root_service"] for c in a["chains"]] == ["billing"]  # A is downstream of B's cascade
    d = v.get(f"/api/v1/issues/{fp('D')}").json()
    assert [(h["status"], h["changed_by"]) for h in d["history"]] == [("acknowledged", "ana"), ("resolved", "ana")]
    assert v.get(f"/api/v1/issues/{uuid.uuid4().hex}").status_code == 404
    assert v.get("/api/v1/issues/not-a-fingerprint").status_code == 422

    first = v.get(f"/api/v1/issues/{fp('G')}/events", params={"limit": 100}).json()
    second = v.get(f"/api/v1/issues/{fp('G')}/events", params={"limit": 100, "cursor": first["next_cursor"]}).json()
    ids = [e["event_id"] for e in first["events"] + second["events"]]
    assert len(ids) == len(set(ids)) == 150 and second["next_cursor"] is None
    stamps = [e["timestamp"] for e in first["events"] + second["events"]]
    assert stamps == sorted(stamps, reverse=True)

    ev = v.get(f"/api/v1/events/{ids[0]}").json()
    assert ev["fingerprint"] == fp("G") and ev["user"]["id"].startswith("u")
    (exc,) = ev["exceptions"]
    assert exc["type"] == "ConnectionError" and exc["frames"][0]["in_app"] is True
    assert exc["frames"][0]["module"] == "checkout.pay" and exc["frames"][0]["function"] == "submit"
    assert v.get(f"/api/v1/events/{uuid.uuid4()}").status_code == 404


def test_overview_alerts_chains(web_env: WebEnv) -> None:
    v = api(web_env)
    o = v.get("/api/v1/overview").json()
    assert o["report"]["overview"]["events"] == 468 and o["report"]["overview"]["new_issues"] == 2
    assert {i["fingerprint"] for i in o["new_issues"]} == {fp("B"), fp("G")}
    assert [a["kind"] for a in v.get("/api/v1/alerts").json()] == ["spike", "new_issue"]
    (chain,) = v.get("/api/v1/chains").json()
    assert chain["root_fingerprint"] == fp("B") and [e["service"] for e in chain["events"]] == [
        "billing", "checkout", "checkout"]
    assert v.get("/api/v1/overview", params={"since": "soon"}).status_code == 400


def test_actions_reach_issue_status_with_who(web_env: WebEnv) -> None:
    m = api(web_env, "member")
    r = m.post(f"/api/v1/issues/{fp('G')}/actions", json={"action": "assign", "assignee": "bob", "note": "yours"})
    assert r.status_code == 200 and r.json()["published"][0]["changed_by"] == "alice"
    wait_for(lambda: state(web_env, fp("G")), lambda s: s is not None and s[2] == "bob", 60,
             "the assignment in issue_status", diagnostics=web_env.notify.output)
    r = m.post(f"/api/v1/issues/{fp('G')}/actions", json={"action": "resolve", "in_next_release": True})
    assert r.status_code == 200
    got = wait_for(lambda: state(web_env, fp("G")), lambda s: s is not None and s[0] == "resolved", 60,
                   "the resolution in issue_status", diagnostics=web_env.notify.output)
    assert got[1:4] == ("alice", "bob", "status") and got[7] == 1  # the assignee is kept; next release
    g = m.get(f"/api/v1/issues/{fp('G')}").json()
    assert g["status"] == "resolved" and g["assignee"] == "bob" and g["resolved_in_next_release"]
    assert fp("G") in fps(m.get("/api/v1/issues", params={"assignee": "bob"}).json())
    assert fp("G") not in fps(m.get("/api/v1/issues", params={"status": "open", "limit": 100}).json())

    bulk = m.post("/api/v1/issues/actions", json={"action": "ignore", "fingerprints": [fp("A"), fp("C")],
                                                  "ignore_until_events": 50, "note": "noisy"})
    assert bulk.status_code == 200 and len(bulk.json()["published"]) == 2
    a = wait_for(lambda: state(web_env, fp("A")), lambda s: s is not None and s[0] == "ignored", 60, "A ignored")
    assert a[5:7] == (50, 340)  # until 50 more events than its 340
    wait_for(lambda: state(web_env, fp("C")), lambda s: s is not None and s[0] == "ignored", 60, "C ignored")
    m.post(f"/api/v1/issues/{fp('C')}/actions", json={"action": "ignore", "ignore_minutes": 30})
    wait_for(lambda: state(web_env, fp("C")), lambda s: s is not None and s[8] == 1, 60, "C ignored for 30 min")
    for action in ("acknowledge", "investigate", "reopen", "unassign"):
        assert m.post(f"/api/v1/issues/{fp('B')}/actions", json={"action": action}).status_code == 200
    wait_for(lambda: state(web_env, fp("B")), lambda s: s is not None and s[3] == "unassign" and s[0] == "new", 60,
             "B reopened and unassigned")
    history = m.get(f"/api/v1/issues/{fp('B')}").json()["history"]
    assert [h["status"] for h in history][-4:] == ["acknowledged", "investigating", "new", "new"]
    assert m.post(f"/api/v1/issues/{fp('B')}/actions", json={"action": "assign"}).status_code == 422
    assert m.post("/api/v1/issues/actions", json={"action": "resolve", "fingerprints": ["nope"]}).status_code == 422
    assert m.post(f"/api/v1/issues/{fp('B')}/actions", json={"action": "explode"}).status_code == 422


def test_new_issue_is_assigned_by_the_ownership_rules(web_env: WebEnv) -> None:
    """A new_issue alert on `alerts` whose trigger event has frames in auth.* → assigned to #identity."""
    ev = api(web_env).get(f"/api/v1/issues/{fp('F')}/events", params={"limit": 1}).json()["events"][0]
    alert = AlertEvent(kind="new_issue", severity="warning", dedup_key=f"new:{fp('F')}", service="auth",
                       fingerprint=fp("F"), title="UserWarning: deprecated flag",
                       trigger_event_id=uuid.UUID(ev["event_id"]))

    async def publish() -> None:
        producer = AIOKafkaProducer(**web_env.settings.kafka_client_kwargs())
        await producer.start()
        try:
            await producer.send_and_wait(web_env.settings.topic_alerts, alert.model_dump_json().encode())
        finally:
            await producer.stop()

    asyncio.run(publish())
    got = wait_for(lambda: state(web_env, fp("F")), lambda s: s is not None and s[2] == "#identity", 60,
                   "the owner from the rules", diagnostics=web_env.notify.output)
    assert got[0] == "ignored" and got[1] == "ownership-rules" and got[3] == "assign"  # status kept


def test_every_page_renders_for_a_viewer_without_actions(web_env: WebEnv) -> None:
    c, _ = login(web_env, "viewer")
    ev = api(web_env).get(f"/api/v1/issues/{fp('B')}/events", params={"limit": 1}).json()["events"][0]
    pages = {
        "/": ["Top issues", "KeyError: &#39;cart_id&#39;", "<svg"],
        "/issues?status=&sort=events": ["table class=\"stream\"", "UserWarning: deprecated flag"],
        f"/issues/{fp('B')}": ["OperationalError: database timeout", "billing.db", "investigating"],
        f"/events/{ev['event_id']}": ["OperationalError", "charge", ev["event_id"]],
        "/chains": ["root cause", "billing"],
        "/alerts": ["spike", "300 events/h vs baseline 20"],
        "/settings": ["Ownership rules", "auth.*", "#identity"],
    }
    for path, expected in pages.items():
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        for text in expected:
            assert text in r.text, (path, text)
        assert "cdn" not in r.text.lower() and "https://" not in r.text  # nothing fetched from the internet
    assert 'value="resolve"' not in c.get(f"/issues/{fp('B')}").text  # a viewer sees no action buttons
    assert c.post(f"/issues/{fp('B')}/action", data={"action": "resolve"}).status_code == 403
    assert c.get(f"/issues/{uuid.uuid4().hex}").status_code == 404
    assert c.get("/events/not-a-uuid").status_code == 404


def test_unreachable_clickhouse_or_kafka_is_a_503_not_a_crash(web_env: WebEnv) -> None:
    from errstream.local.process import free_port

    no_ch = web_env.settings.model_copy(update={"clickhouse_url": f"http://127.0.0.1:{free_port()}"})
    with serving(lambda port: server_config(no_ch, "127.0.0.1", port, app=create_app(no_ch, live=False)),
                 "web-without-clickhouse") as url:  # starts although ClickHouse is down
        c = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {web_env.tokens['member']}"})
        r = c.get("/api/v1/issues")
        assert r.status_code == 503 and "ClickHouse" in r.json()["detail"] and r.headers["retry-after"] == "5"
        assert c.get("/api/v1/me").status_code == 200  # auth does not need ClickHouse

    no_kafka = web_env.settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    with serving(lambda port: server_config(no_kafka, "127.0.0.1", port, app=create_app(no_kafka, live=False)),
                 "web-without-kafka") as url:
        c = httpx.Client(base_url=url, timeout=90, headers={"Authorization": f"Bearer {web_env.tokens['member']}"})
        assert c.get("/api/v1/issues").status_code == 200  # reads work without Kafka
        r = c.post(f"/api/v1/issues/{fp('D')}/actions", json={"action": "reopen"})
        assert r.status_code == 503 and "nothing was changed" in r.json()["detail"]
    assert state(web_env, fp("D"))[0] == "resolved"


def test_bulk_form_on_the_stream(web_env: WebEnv) -> None:
    c, csrf = login(web_env, "member")
    back = "/issues?service=auth"
    r = c.post("/issues/bulk", data={"csrf_token": csrf, "back": back, "action": "investigate",
                                     "fp": [fp("C"), fp("F")], "note": "triage"})
    assert r.status_code == 303 and r.headers["location"].startswith(back + "&msg=2+issues+under+investigation")
    page = c.get(r.headers["location"]).text
    assert "2 issues under investigation." in page
    for target in (fp("C"), fp("F")):
        got = wait_for(partial(state, web_env, target), lambda s: s is not None and s[0] == "investigating", 60,
                       "the bulk change in issue_status")
        assert got[1] == "alice"
    nothing = c.post("/issues/bulk", data={"csrf_token": csrf, "back": back, "action": "resolve"})
    assert "Select+issues+first" in nothing.headers["location"]
    evil = c.post("/issues/bulk", data={"csrf_token": csrf, "back": "https://evil.example/", "action": "resolve",
                                        "fp": [fp("C")], "ignore_minutes": "x"})
    assert evil.headers["location"].startswith("/?msg=")  # never redirected off-site


def test_issue_assign_from_the_command_line_keeps_the_status(web_env: WebEnv) -> None:
    import os
    import subprocess
    import sys

    from tests.support.services import settings_env

    env = {**os.environ, **settings_env(web_env.settings), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "errstream.cli", "issue", "assign", fp("D"), "#platform", "--by", "cy"],
                          env=env, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "#platform" in done.stdout and "resolved" in done.stdout
    got = wait_for(lambda: state(web_env, fp("D")), lambda s: s is not None and s[2] == "#platform", 60,
                   "the CLI assignment in issue_status", diagnostics=web_env.notify.output)
    assert (got[0], got[1], got[3]) == ("resolved", "cy", "assign")
    bad = subprocess.run([sys.executable, "-m", "errstream.cli", "issue", "assign", "nope", "x"], env=env,
                         capture_output=True, text=True, timeout=90, check=False)
    assert bad.returncode == 2 and "32 hex" in bad.stdout + bad.stderr  # the CLI error layer writes to stderr


def test_merge_and_unmerge_through_the_api(web_env: WebEnv) -> None:
    """Runs last in this module: it leaves D and E separate again, as it found them."""
    m, v = api(web_env, "member"), api(web_env, "viewer")

    def events() -> dict[str, int]:
        return {i["fingerprint"]: i["events"] for i in v.get("/api/v1/issues", params={"limit": 100}).json()["issues"]}

    d, e = fp("D"), fp("E")
    before = events()
    assert v.post("/api/v1/issues/actions", json={"action": "merge", "fingerprints": [d, e]}).status_code == 403
    itself = m.post("/api/v1/issues/actions", json={"action": "merge", "fingerprints": [d]})
    assert itself.status_code == 400 and "into itself" in itself.json()["detail"]
    unknown = m.post(f"/api/v1/issues/{d}/actions", json={"action": "merge", "into": "f" * 32})
    assert unknown.status_code == 400 and "no such issue" in unknown.json()["detail"]
    assert m.post(f"/api/v1/issues/{d}/actions", json={"action": "merge", "into": "x"}).status_code == 422

    r = m.post("/api/v1/issues/actions", json={"action": "merge", "fingerprints": [d, e], "note": "same bug"})
    assert r.status_code == 200, r.text
    assert [(c["fingerprint"], c["primary"], c["changed_by"]) for c in r.json()["merges"]] == [(e, d, "alice")]
    merged = wait_for(events, lambda s: e not in s and s.get(d) == before[d] + before[e], 60,
                      "one row for the merged issues", diagnostics=web_env.notify.output)
    assert len(merged) == len(before) - 1
    group = v.get(f"/api/v1/issues/{e}").json()  # a member's page is its group's
    assert group["fingerprint"] == d and group["members"] == sorted([d, e])
    assert [(x["action"], x["changed_by"], x["note"]) for x in group["merges"]] == [("merge", "alice", "same bug")]

    b = fp("B")  # the root of the dataset's chain: the group's page shows it
    r = m.post(f"/api/v1/issues/{b}/actions", json={"action": "merge", "into": e})  # a member: into its primary
    assert r.status_code == 200 and [(c["fingerprint"], c["primary"]) for c in r.json()["merges"]] == [(b, d)]
    wait_for(events, lambda s: b not in s and s.get(d) == before[d] + before[e] + before[b], 60, "B in the group")
    assert [c["root_fingerprint"] for c in v.get(f"/api/v1/issues/{d}").json()["chains"]] == [b]

    r = m.post(f"/api/v1/issues/{d}/actions", json={"action": "unmerge"})  # the primary: its whole group
    assert r.status_code == 200 and [c["fingerprint"] for c in r.json()["merges"]] == sorted([b, e])
    wait_for(events, lambda s: all(s.get(x) == before[x] for x in (b, d, e)), 60, "three rows again",
             diagnostics=web_env.notify.output)
    again = m.post(f"/api/v1/issues/{d}/actions", json={"action": "unmerge"})
    assert again.status_code == 400 and "is not merged" in again.json()["detail"]

    # the same from the stream's bulk form and the issue page's form
    c, csrf = login(web_env, "member")
    r = c.post("/issues/bulk", data={"csrf_token": csrf, "back": "/issues", "action": "merge", "fp": [d, e]})
    assert r.status_code == 303 and "Issue+merged" in r.headers["location"]
    page = wait_for(lambda: c.get(f"/issues/{e}").text, lambda t: "2 fingerprints" in t, 60, "the merged issue page")
    assert f"<code>{d[:12]}</code> (primary)" in page and "same bug" in page  # the merge history too
    r = c.post(f"/issues/{d}/action", data={"csrf_token": csrf, "action": "unmerge"})
    assert r.status_code == 303 and "Issue+unmerged" in r.headers["location"]
    wait_for(events, lambda s: s.get(d) == before[d] and s.get(e) == before[e], 60, "two rows again, from the form")
    r = c.post(f"/issues/{d}/action", data={"csrf_token": csrf, "action": "unmerge"})
    assert "Not+done" in r.headers["location"] and "not+merged" in r.headers["location"]


def test_healthz_tells_whether_clickhouse_answers(settings: Settings) -> None:
    """A health probe that only says "alive" hides an outage: it names ClickHouse as well as the alerts feed."""
    from errstream.local.process import free_port
    from tests.support.web import running_web

    with running_web(settings) as url:
        health = httpx.get(f"{url}/healthz", timeout=30).json()
        assert health == {"status": "ok", "clickhouse": True, "alerts_feed": True, "live_streams": 0,
                          "live_counts": False}  # no page open: no live stream, no live counts
    down = settings.model_copy(update={"clickhouse_url": f"http://127.0.0.1:{free_port()}"})
    with running_web(down, wait_for_feed=False) as url:
        assert httpx.get(f"{url}/healthz", timeout=30).json()["clickhouse"] is False
