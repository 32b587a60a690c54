"""Actions taken in the web app change what the real worker's detectors do (the same topic `errstream issue` uses)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from errstream.web.auth import TokenStore
from errstream_core.settings import Settings
from sinks.migrate import migrate
from tests.support.detection import alerts, committed, error, of_kind, publish, wait_alerts
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
            time.sleep(3)
            got = alerts(settings)
            (regression,) = of_kind(got, "regression")
            assert regression["fingerprint"] == fp["token failed"]
            assert regression["details"]["resolved_by"] == "alice" and regression["details"]["note"] == "fixed"
            assert [a["kind"] for a in got if a["fingerprint"] == fp["parse failed"]] == ["new_issue"]
    finally:
        worker.stop()
