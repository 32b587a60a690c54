"""Recovery on the real stack: exact counts while sampling drops raw events, the views, the report.

A `payment` service retries a flaky bank (200 failure episodes, 160 absorbed by the retry) and a
`checkout` service falls back to a cache; warnings (the recovered episodes) are sampled at 20 %,
so only the aggregates can give the true rates. People resolve the payment issue, which gives a
manual recovery time beside the automatic ones.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client

from errstream.web.auth import TokenStore
from errstream_core.settings import Settings
from reports.report import build_report
from schemas.alert_rules import parse_alert_rules
from schemas.events import ErrorEvent, Recovery, Resources
from sinks.derived_alerts.alert_rules import RuleEvaluator
from tests.support.alerts import publish as publish_raw
from tests.support.cli import cli
from tests.support.detection import publish
from tests.support.kafka import read_topic
from tests.support.services import Service, running_services, wait_for
from tests.support.web import running_web

pytestmark = pytest.mark.e2e

SAMPLING_ENV = {"ERRSTREAM_SAMPLE_RATES": json.dumps({"warning": 0.2, "error": 1.0})}
# automatic recovery times of the 160 recovered retries: median 200 ms, p95 5 s, mean 750 ms
DURATIONS = [200] * 100 + [1000] * 50 + [5000] * 10
SNAPSHOT = Resources(cpu_percent=87.5, rss_bytes=512_000_000, memory_available_bytes=1_000_000_000, threads=24,
                     open_fds=310, load_1m=3.2)


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Service]]:
    with running_services(settings, tmp_path, SAMPLING_ENV) as running:
        running["notify"] = Service("notify", settings, tmp_path).start()
        yield running


def _traffic(start: datetime) -> list[ErrorEvent]:
    events = []
    for i, ms in enumerate(DURATIONS):
        events.append(ErrorEvent(service="payment", level="warning", message="bank connection refused",
                                 timestamp=start + timedelta(seconds=i),
                                 recovery=Recovery(successful=True, method="retry", attempts=2, duration_ms=ms)))
    for i in range(40):
        events.append(ErrorEvent(service="payment", level="error", message="bank connection refused",
                                 timestamp=start + timedelta(seconds=i),
                                 recovery=Recovery(successful=False, method="retry", attempts=3, duration_ms=900),
                                 resources=SNAPSHOT))
    for i in range(30):
        events.append(ErrorEvent(service="checkout", level="warning", message="price service timed out",
                                 timestamp=start + timedelta(seconds=i), recovery=Recovery(method="fallback",
                                                                                           successful=True)))
    for i in range(50):  # errors nobody tried to recover from
        events.append(ErrorEvent(service="checkout", level="error", message=f"template {i % 3} missing",
                                 timestamp=start + timedelta(seconds=i)))
    return events


def _scalar(ch: Client, sql: str) -> Any:
    try:
        return ch.query(sql).result_rows[0][0]
    except Exception:  # noqa: BLE001 - tables appear when the sink has migrated
        return None


def test_recovery_counts_are_exact_and_reach_views_and_report(
    settings: Settings, ch: Client, stack: dict[str, Service], tmp_path: Path
) -> None:
    db = settings.clickhouse_database
    events = _traffic(datetime.now(UTC) - timedelta(minutes=8))
    publish(settings, events)

    def logs() -> str:
        return stack["worker"].output()[-3000:] + stack["sink"].output()[-3000:]

    wait_for(lambda: _scalar(ch, f"SELECT sum(events) FROM {db}.error_counts_1m"), lambda n: n == len(events),
             120, f"{len(events)} events counted", diagnostics=logs)
    wait_for(lambda: _scalar(ch, f"SELECT sum(episodes) FROM {db}.recovery_counts_1m"), lambda n: n == 230,
             60, "230 recovery episodes counted", diagnostics=logs)
    stored = int(_scalar(ch, f"SELECT count() FROM {db}.error_events FINAL WHERE service = 'payment'"))
    assert 40 <= stored < 200  # most recovered episodes were sampled away ...

    rows = ch.query(f"SELECT service, method, attempted, successful, success_rate_pct, avg_recovery_ms,"
                    f" median_recovery_ms, p95_recovery_ms FROM {db}.v_recovery_by_method ORDER BY service"
                    ).result_rows
    assert [tuple(r[:5]) for r in rows] == [("checkout", "fallback", 30, 30, 100.0),
                                           ("payment", "retry", 200, 160, 80.0)]  # ... yet the counts are exact
    payment = rows[1]
    assert payment[5] == 750.0 and payment[6] == 200 and payment[7] == 5000
    assert rows[0][5] is None  # the fallbacks reported no duration

    issue = ch.query(f"SELECT fingerprint, attempted, successful FROM {db}.v_recovery_by_issue"
                     f" ORDER BY attempted DESC LIMIT 1").result_rows[0]
    assert tuple(issue[1:]) == (200, 160)
    fingerprint = issue[0]

    # People resolve the payment issue: a manual recovery time beside the automatic ones.
    done = cli(settings, "issue", "resolve", fingerprint, "--by", "ops", "--note", "bank fixed its pool")
    assert done.returncode == 0, done.stdout + done.stderr
    manual = wait_for(
        lambda: ch.query(f"SELECT kind, recoveries, avg_seconds, median_seconds, p95_seconds"
                         f" FROM {db}.v_recovery_times ORDER BY kind").result_rows,
        lambda r: len(r) == 2 and r[1][1] == 1, 60, "the manual recovery time", diagnostics=stack["notify"].output)
    automatic = manual[0]
    assert automatic[:5] == ("automatic", 160, 0.75, 0.2, 5.0)
    assert manual[1][2] is not None and 8 * 60 - 5 <= manual[1][2] <= 8 * 60 + 120  # first seen → resolved

    # "less than 85 % of payment retries succeed over 30 minutes" fires (80 %); "less than 75 %" does not
    rules = parse_alert_rules("\n".join(
        f'[[rules]]\nname = "retries-{limit}"\nwhen = "recovery_rate"\nservice = "payment"\nmethod = "retry"\n'
        f"window_minutes = 30\nthreshold = {limit}\nmin_attempts = 20\n" for limit in (85, 75)))
    fired = asyncio.run(RuleEvaluator(settings, ch).evaluate(rules))
    assert [(a.kind, a.details["rule"], a.details["value"], a.service) for a in fired] == [
        ("rule", "retries-85", 80.0, "payment")]
    assert fired[0].title == "retries-85: 80.00 % of retry attempts succeeded in 30 min"

    report = build_report(ch, db, "1h")
    assert (report.recovery.attempted, report.recovery.successful, report.recovery.success_rate_pct) == (
        230, 190, 82.6)
    top = {i.fingerprint: i for i in report.top_issues}
    assert (top[fingerprint].recovery_attempted, top[fingerprint].recovery_successful) == (200, 160)
    assert {t.kind: t.recoveries for t in report.recovery.times} == {"automatic": 160, "manual": 1, "auto_resolved": 0}

    out = cli(settings, "report", "--since", "1h", "--json", "--service", "payment")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)["recovery"]
    assert [(m["method"], m["attempted"], m["successful"], m["median_ms"], m["p95_ms"]) for m in data["by_method"]
            ] == [("retry", 200, 160, 200.0, 5000.0)]
    _web_shows_recovery(settings, ch, tmp_path, fingerprint)

    text = cli(settings, "report", "--since", "1h")
    assert text.returncode == 0, text.stderr
    assert "190 of 230 attempts succeeded (82.6 %)" in text.stdout
    assert "automatic" in text.stdout and "manual" in text.stdout


def test_an_event_with_hostile_recovery_is_dead_lettered_and_counts_nothing(
    settings: Settings, ch: Client, stack: dict[str, Service]
) -> None:
    db = settings.clickhouse_database
    good = ErrorEvent(service="payment", message="ok", recovery=Recovery(successful=True, duration_ms=5))
    hostile = {"service": "payment", "message": "bad", "event_id": str(uuid.uuid4()),
               "recovery": {"successful": True, "duration_ms": 2**40}}
    publish_raw(settings, settings.topic_errors, [json.dumps(hostile).encode(), good.model_dump_json().encode()])
    wait_for(lambda: _scalar(ch, f"SELECT sum(episodes) FROM {db}.recovery_counts_1m"), lambda n: n == 1, 90,
             "the valid episode counted", diagnostics=lambda: stack["worker"].output()[-3000:])
    assert _scalar(ch, f"SELECT sum(events) FROM {db}.error_counts_1m") == 1
    [dead] = read_topic(settings, settings.topic_dlq, expect=1, timeout=30)
    assert dead["reason"] == "invalid_event" and "recovery.duration_ms" in dead["detail"]


def _web_shows_recovery(settings: Settings, ch: Client, home: Path, fingerprint: str) -> None:
    """The API's issue and overview, the overview and issue pages, and the event page's resource snapshot."""
    web_settings = settings.model_copy(update={"home": home})
    token = TokenStore(web_settings.tokens_path).create("vera", "viewer")
    with running_web(web_settings, wait_for_feed=False) as url:
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        issue = api.get(f"/api/v1/issues/{fingerprint}").json()
        assert {k: issue["recovery"][k] for k in ("attempted", "successful", "success_rate_pct")} == {
            "attempted": 200, "successful": 160, "success_rate_pct": 80.0}
        overview = api.get("/api/v1/overview", params={"since": "1h"}).json()
        assert overview["report"]["recovery"]["attempted"] == 230

        browser = httpx.Client(base_url=url, timeout=60)
        form = browser.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        assert browser.post("/login", data={"csrf_token": csrf.group(1), "token": token, "next": "/"}
                            ).status_code == 303
        page = browser.get("/", params={"since": "1h"}).text
        assert 'id="recovery-methods"' in page and "190 of 230 recovery attempts succeeded" in page
        assert "160 of 200 attempts succeeded (80.0 %)" in browser.get(f"/issues/{fingerprint}").text
        [(event_id,)] = ch.query(f"SELECT toString(event_id) FROM {settings.clickhouse_database}.error_events"
                                 " WHERE resources != '' LIMIT 1").result_rows
        event = browser.get(f"/events/{event_id}").text
        assert 'id="event-resources"' in event and "512,000,000" in event and 'id="event-recovery"' in event
        detail = api.get(f"/api/v1/events/{event_id}").json()
        assert detail["resources"]["threads"] == 24 and detail["recovery"]["successful"] is False
