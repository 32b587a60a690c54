"""Actions taken in the web app change what the real worker's detectors do (the same topic `errstream issue` uses)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from clickhouse_connect.driver.client import Client

from errstream.web.auth import TokenStore
from errstream_core.settings import Settings
from schemas.events import ErrorEvent
from sinks.clickhouse.migrate import migrate
from tests.support.detection import caught_up, committed, error, of_kind, publish, wait_alerts
from tests.support.services import Service, wait_for
from tests.support.web import running_web

pytestmark = pytest.mark.e2e


def test_resolve_and_ignore_from_the_web_app_reach_the_detectors(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"home": tmp_path})
    migrate(settings)
    token = TokenStore(settings.tokens_path).create("alice", "member")
    worker = Service("worker", settings, tmp_path).start()
    try:
        with running_web(settings) as url:
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            now = datetime.now(UTC)
            publish(settings, [error("auth", "token", now), error("auth", "parse", now)])
            got = wait_alerts(settings, lambda a: len(of_kind(a, "new_issue")) >= 2, what="two new issues",
                              diagnostics=lambda: worker.output()[-3000:])
            fp = {a["title"].split(": ")[-1]: a["fingerprint"] for a in of_kind(got, "new_issue")}
            before = committed(settings, settings.topic_issue_status)
            steps = [(fp["token failed"], {"action": "assign", "assignee": "bob"}),
                     (fp["token failed"], {"action": "resolve", "note": "fixed"}),
                     (fp["parse failed"], {"action": "ignore"})]
            for target, body in steps:
                assert api.post(f"/api/v1/issues/{target}/actions", json=body).status_code == 200
            wait_for(lambda: committed(settings, settings.topic_issue_status), lambda n: n >= before + 3, 60,
                     "the worker to consume the web app's changes", diagnostics=lambda: worker.output()[-3000:])

            later = datetime.now(UTC)
            publish(settings, [error("auth", issue, later + timedelta(milliseconds=10 * i))
                               for i in range(30) for issue in ("token", "parse")])
            wait_alerts(settings, lambda a: len(of_kind(a, "regression")) >= 1, what="the regression",
                        diagnostics=lambda: worker.output()[-3000:])
            got = caught_up(settings)
            (regression,) = of_kind(got, "regression")
            assert regression["fingerprint"] == fp["token failed"]
            assert regression["details"]["resolved_by"] == "alice" and regression["details"]["note"] == "fixed"
            assert [a["kind"] for a in got if a["fingerprint"] == fp["parse failed"]] == ["new_issue"]
    finally:
        worker.stop()


def _release(event: ErrorEvent, release: str) -> ErrorEvent:
    return event.model_copy(update={"release": release})


def test_an_ignore_until_more_events_lifts_and_a_next_release_resolution_spares_its_releases(
    settings: Settings, ch: Client, tmp_path: Path,
) -> None:
    settings = settings.model_copy(update={"home": tmp_path})
    migrate(settings)
    token = TokenStore(settings.tokens_path).create("alice", "member")
    worker = Service("worker", settings, tmp_path, extra_env={"ERRSTREAM_ALERT_THRESHOLD_COUNTS": "[3, 10]"}).start()
    sink = Service("sink", settings, tmp_path).start()  # the web app reads the issue's releases from ClickHouse
    logs = lambda: worker.output()[-3000:]  # noqa: E731
    try:
        with running_web(settings) as url:
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            now = datetime.now(UTC)
            publish(settings, [_release(error("auth", issue, now), "1.0") for issue in ("flaky", "fixed")])
            got = wait_alerts(settings, lambda a: len(of_kind(a, "new_issue")) >= 2, what="two new issues",
                              diagnostics=logs)
            fp = {a["title"].split(": ")[-1]: a["fingerprint"] for a in of_kind(got, "new_issue")}
            db = settings.clickhouse_database
            wait_for(lambda: ch.query(f"SELECT count() FROM {db}.error_events").result_rows[0][0], lambda n: n >= 2,
                     60, "the sink to store both events", diagnostics=sink.output)
            before = committed(settings, settings.topic_issue_status)
            steps = [(fp["flaky failed"], {"action": "ignore", "ignore_until_events": 3}),
                     (fp["fixed failed"], {"action": "resolve", "in_next_release": True})]
            for target, body in steps:
                assert api.post(f"/api/v1/issues/{target}/actions", json=body).status_code == 200
            wait_for(lambda: committed(settings, settings.topic_issue_status), lambda n: n >= before + 2, 60,
                     "the worker to consume the web app's changes", diagnostics=logs)

            later = datetime.now(UTC)
            newer = _release(error("auth", "fixed", later + timedelta(seconds=1)), "1.1")
            publish(settings, [_release(error("auth", "flaky", later + timedelta(milliseconds=10 * i)), "1.0")
                               for i in range(12)]
                    + [_release(error("auth", "fixed", later + timedelta(milliseconds=10 * i)), "1.0")
                       for i in range(3)] + [newer])
            wait_alerts(settings, lambda a: len(of_kind(a, "regression")) >= 1
                        and any(x["dedup_key"] == f"threshold:{fp['flaky failed']}:10" for x in a),
                        what="the regression and the flaky issue's 10-events mark", diagnostics=logs)
            got = caught_up(settings)
            (regression,) = of_kind(got, "regression")
            assert regression["fingerprint"] == fp["fixed failed"]
            assert regression["trigger_event_id"] == str(newer.event_id)  # not an event of release 1.0
            flaky = [a["dedup_key"] for a in of_kind(got, "threshold") if a["fingerprint"] == fp["flaky failed"]]
            assert flaky == [f"threshold:{fp['flaky failed']}:10"]  # the 3-mark fell inside the ignore
    finally:
        sink.stop()
        worker.stop()
