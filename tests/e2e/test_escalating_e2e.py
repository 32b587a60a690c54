"""Archive until escalating, end to end: the web API archives, the real worker watches, the issue comes back.

The real worker, sink and notify (status and alerts → ClickHouse, webhooks) and the real web app, on the real
broker and ClickHouse: an issue archived from the API computes its forecast from ClickHouse's true counts;
volume below the forecast keeps it archived and silent; volume above it raises one ``escalating`` alert (on
the alerts topic, stored and delivered to a webhook) and puts the issue back in the stream, which the API shows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.webhook_receiver import WebhookReceiver
from errstream.web.auth import TokenStore
from errstream_core.settings import Settings
from sinks.clickhouse.migrate import migrate
from tests.support.cli import cli
from tests.support.detection import caught_up, committed, error, of_kind, publish, wait_alerts
from tests.support.services import Service, wait_for
from tests.support.web import running_web

pytestmark = pytest.mark.e2e


def _count(ch: Client, settings: Settings, fp: str) -> int:
    return int(ch.query(f"SELECT sum(events) FROM {settings.clickhouse_database}.error_counts_1m "
                        "WHERE fingerprint = {fp:String}", parameters={"fp": fp}).result_rows[0][0] or 0)


def _stream(api: httpx.Client, **params: str) -> list[str]:
    """The issues the stream lists; by default the open ones, as the web app's stream page shows them."""
    got = api.get("/api/v1/issues", params=params or {"status": "open"})
    assert got.status_code == 200, got.text
    return [i["fingerprint"] for i in got.json()["issues"]]


def test_an_archived_issue_stays_archived_below_its_forecast_and_comes_back_above_it(
    settings: Settings, ch: Client, tmp_path: Path,
) -> None:
    settings = settings.model_copy(update={"home": tmp_path})
    migrate(settings)
    token = TokenStore(settings.tokens_path).create("alice", "member")
    with WebhookReceiver() as hook:
        webhooks = [{"name": "oncall", "url": hook.url(), "kinds": ["escalating"]}]
        worker = Service("worker", settings, tmp_path,
                         extra_env={"ERRSTREAM_ALERT_THRESHOLD_COUNTS": "[3, 56]"}).start()
        sink = Service("sink", settings, tmp_path).start()
        notify = Service("notify", settings, tmp_path,
                         extra_env={"ERRSTREAM_ALERT_WEBHOOKS": orjson.dumps(webhooks).decode()}).start()
        logs = lambda: worker.output()[-3000:] + notify.output()[-2000:]  # noqa: E731
        try:
            with running_web(settings) as url:
                api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
                # its history: 4 events in one clock hour, an hour it was first seen in (a young issue)
                hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
                publish(settings, [error("auth", "flaky", hour + timedelta(seconds=1 + i)) for i in range(4)])
                got = wait_alerts(settings, lambda a: len(of_kind(a, "new_issue")) >= 1, what="the new issue",
                                  diagnostics=logs)
                fp = of_kind(got, "new_issue")[0]["fingerprint"]
                wait_for(lambda: _count(ch, settings, fp), lambda n: n == 4, 60, "the sink to count 4 events",
                         diagnostics=sink.output)
                assert fp in _stream(api)  # new: in the default stream

                before = committed(settings, settings.topic_issue_status)
                done = api.post(f"/api/v1/issues/{fp}/actions", json={"action": "archive", "note": "known flake"})
                assert done.status_code == 200, done.text
                (archived,) = done.json()["published"]
                # younger than a week: ten times its busiest hour (4), every day of the week
                assert archived["status"] == "ignored" and archived["ignore_until_escalating"] is True
                assert archived["escalating_forecast"] == [40] * 7
                wait_for(lambda: committed(settings, settings.topic_issue_status), lambda n: n >= before + 1, 60,
                         "the worker to take the archive", diagnostics=logs)
                issue = wait_for(lambda: api.get(f"/api/v1/issues/{fp}").json(), lambda i: i["status"] == "ignored",
                                 60, "the archive in ClickHouse", diagnostics=notify.output)
                assert issue["ignore_until_escalating"] is True and issue["escalating_forecast"] == [40] * 7
                assert fp not in _stream(api) and fp in _stream(api, query="is:archived")

                # below the forecast: 30 events in the hour (≤ 40) keep it archived, and silent
                now = datetime.now(UTC)
                publish(settings, [error("auth", "flaky", now + timedelta(milliseconds=10 * i)) for i in range(30)])
                wait_for(lambda: _count(ch, settings, fp), lambda n: n == 34, 60, "the sink to count 34 events",
                         diagnostics=sink.output)
                got = caught_up(settings, diagnostics=logs)
                # the alerts topic has several partitions (keyed by dedup key): its order across them is not theirs
                assert sorted(a["kind"] for a in got if a["fingerprint"] == fp) == ["new_issue", "threshold"]  # 3
                assert api.get(f"/api/v1/issues/{fp}").json()["status"] == "ignored"
                assert fp not in _stream(api)

                # above it: 20 more (50 in the hour > 40) bring it back, with one escalating alert
                later = datetime.now(UTC)
                publish(settings, [error("auth", "flaky", later + timedelta(milliseconds=10 * i)) for i in range(20)])
                got = wait_alerts(settings, lambda a: len(of_kind(a, "escalating")) >= 1, what="the escalating alert",
                                  diagnostics=logs)
                (alert,) = of_kind(got, "escalating")
                assert alert["fingerprint"] == fp and alert["service"] == "auth"
                assert alert["details"]["expected"] == 40 and alert["details"]["seen"] > 40
                assert "expected at most 40 an hour" in alert["message"] and "by alice" in alert["message"]
                assert alert["title"] == "Escalating in auth: RuntimeError: flaky failed"

                issue = wait_for(lambda: api.get(f"/api/v1/issues/{fp}").json(),
                                 lambda i: i["status"] == "escalating", 60, "the issue back in the stream",
                                 diagnostics=logs)
                assert issue["raw_status"] == "escalating"
                assert [(h["status"], h["action"], h["changed_by"]) for h in issue["history"]] == [
                    ("ignored", "status", "alice"), ("escalating", "escalating", "errstream:escalating")]
                assert fp in _stream(api) and fp in _stream(api, query="is:escalating")
                stored = wait_for(lambda: api.get("/api/v1/alerts", params={"kind": "escalating"}).json(),
                                  lambda rows: len(rows) == 1, 60, "notify to store the alert", diagnostics=logs)
                assert stored[0]["alert_id"] == alert["alert_id"]
                wait_for(lambda: len(hook.ok()), lambda n: n == 1, 60, "the webhook delivery", diagnostics=logs)
                assert hook.ok()[0].body["kind"] == "escalating" and hook.ok()[0].body["fingerprint"] == fp

                # back in the stream, it alerts again as usual; and detection counted every event exactly once:
                # the 56-events mark fires at the 56th event ClickHouse counts, not before
                publish(settings, [error("auth", "flaky", datetime.now(UTC)) for _ in range(2)])
                wait_for(lambda: _count(ch, settings, fp), lambda n: n == 56, 60, "the sink to count 56 events",
                         diagnostics=sink.output)
                got = caught_up(settings, diagnostics=logs)
                marks = [(a["details"]["threshold"], a["details"]["count"]) for a in of_kind(got, "threshold")
                         if a["fingerprint"] == fp]
                assert sorted(marks) == [(3, 3), (56, 56)]
                assert len(of_kind(got, "escalating")) == 1

                shown = cli(settings, "issue", "status", fp)
                assert shown.returncode == 0, shown.stderr
                assert f"{fp}: escalating since" in shown.stdout and "errstream:escalating" in shown.stdout
        finally:
            notify.stop()
            sink.stop()
            worker.stop()


def test_archive_from_the_command_line_publishes_the_forecast(settings: Settings, ch: Client, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"home": tmp_path})
    migrate(settings)
    fp = "ab" * 16
    notify = Service("notify", settings, tmp_path).start()
    try:
        done = cli(settings, "issue", "archive", fp, "--by", "carol", "-m", "noisy client")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{fp} → unassigned (ignored) by carol: noisy client" in done.stdout
        # never seen: the minimum ceiling, every day
        assert "until escalating: more events in an hour than its forecast (10 an hour, every day)" in " ".join(
            done.stdout.split())
        row = wait_for(lambda: ch.query(
            f"SELECT toString(status), ignore_until_escalating, escalating_forecast FROM {settings.clickhouse_database}"
            ".issue_status FINAL WHERE fingerprint = {fp:String}", parameters={"fp": fp}).result_rows,
            lambda r: bool(r), 60, "the archive in ClickHouse", diagnostics=notify.output)
        assert row == [("ignored", 1, [10] * 7)]
        shown = cli(settings, "issue", "status", fp)
        assert "ignored since" in shown.stdout and "until escalating" in shown.stdout
        forever = cli(settings, "issue", "ignore", fp, "--by", "carol")
        assert forever.returncode == 0, forever.stderr
        row = wait_for(lambda: ch.query(
            f"SELECT changed_by, ignore_until_escalating FROM {settings.clickhouse_database}.issue_status FINAL"
            " WHERE fingerprint = {fp:String}", parameters={"fp": fp}).result_rows,
            lambda r: bool(r) and r[0][1] == 0, 60, "the plain ignore in ClickHouse", diagnostics=notify.output)
        assert row == [("carol", 0)]
    finally:
        notify.stop()
