"""An error-rate rule applied as code fires above its threshold, stays quiet below, and goes where it says."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.webhook_receiver import WebhookReceiver
from errstream_core.settings import Settings
from producers.integrations.wsgi import ErrstreamWSGIMiddleware
from producers.recovery import retry
from producers.sdk import Client as SdkClient
from tests.support.alerts import query_rows
from tests.support.kafka import read_topic
from tests.support.services import Service, settings_env, wait_for

pytestmark = pytest.mark.e2e

RULES = """
[[rules]]
name = "error-rate-over-10pct"
when = "error_rate"
window_minutes = 30
threshold = 10
severity = "critical"
destinations = ["oncall"]
"""


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/fail":
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"no"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _serve(settings: Settings, service: str, ok: int, failing: int) -> None:
    client = SdkClient(service, release="1.0", settings=settings)
    wrapped = ErrstreamWSGIMiddleware(app, client)
    for path in ["/"] * ok + ["/fail"] * failing:
        environ: dict[str, Any] = {"PATH_INFO": path}
        setup_testing_defaults(environ)
        list(wrapped(environ, lambda *a: None))
    assert client.flush(10)
    client.close()


def test_an_error_rate_rule_fires_above_its_threshold_only(settings: Settings, ch: Client, tmp_path: Path) -> None:
    (tmp_path / "rules.toml").write_text(RULES)
    with WebhookReceiver() as oncall, WebhookReceiver() as team:
        hooks = [{"name": "oncall", "url": oncall.url()}, {"name": "team", "url": team.url()}]
        # rules are checked against the destinations configured where they are applied
        env = {**os.environ, **settings_env(settings), "ERRSTREAM_ALERT_WEBHOOKS": orjson.dumps(hooks).decode()}
        applied = subprocess.run([sys.executable, "-m", "errstream.cli", "alerts", "rules", "apply",
                                  str(tmp_path / "rules.toml")], capture_output=True, text=True, timeout=60, env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        notify = Service("notify", settings, tmp_path, extra_env={
            "ERRSTREAM_ALERT_WEBHOOKS": orjson.dumps(hooks).decode(), "ERRSTREAM_ALERT_RULES_INTERVAL_SECONDS": "0.5",
        }).start()
        try:
            _serve(settings, "payments", ok=15, failing=5)  # 25 % errored: above 10 %
            _serve(settings, "search", ok=19, failing=1)    # 5 %: below
            db = settings.clickhouse_database
            wait_for(lambda: query_rows(ch, f"SELECT service, sum(sessions) FROM {db}.v_release_health "
                                            "GROUP BY service ORDER BY service"),
                     lambda r: r == [("payments", 20), ("search", 20)], 120, "both services' requests counted",
                     diagnostics=notify.output)
            wait_for(lambda: len(oncall.ok()), lambda n: n >= 1, 60, "the rule's alert at oncall",
                     diagnostics=notify.output)
            time.sleep(3)  # more rounds: the rule fires once per cooldown, and never for search
            rule_alerts = [a for a in read_topic(settings, settings.topic_alerts, expect=10**6, timeout=2)
                           if a["kind"] == "rule"]
            assert [(a["service"], a["severity"]) for a in rule_alerts] == [("payments", "critical")]
            assert rule_alerts[0]["title"] == "error-rate-over-10pct: 25.00 % errored in 30 min"
            assert len(oncall.ok()) == 1 and team.ok() == []  # routed to its destination only
        finally:
            notify.stop()


def test_a_rules_file_with_a_mistake_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(RULES + '\n[[rules]]\nname = "x"\nwhen = "errors_per_hour"\n')
    out = subprocess.run([sys.executable, "-m", "errstream.cli", "alerts", "rules", "check", str(tmp_path / "bad.toml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "line 10 (rule 2): when:" in out.stdout and "Traceback" not in out.stderr


def test_a_rule_naming_a_destination_that_does_not_exist_is_refused_by_check_and_apply(
        settings: Settings, tmp_path: Path) -> None:
    """Before: ``destinations = ["oncal-mail"]`` passed check and apply; its alerts reached nobody, silently."""
    (tmp_path / "typo.toml").write_text(RULES.replace('["oncall"]', '["oncal-mail"]')
                                        + '\n[[rules]]\nname = "x"\nwhen = "errors_per_hour"\n')
    hooks = [{"name": "oncall", "url": "https://hooks.example/x"}, {"name": "oncall-mail", "url": "https://m.example/y"}]
    env = {**os.environ, **settings_env(settings), "ERRSTREAM_ALERT_WEBHOOKS": orjson.dumps(hooks).decode()}
    for command in ("check", "apply"):
        out = subprocess.run([sys.executable, "-m", "errstream.cli", "alerts", "rules", command,
                              str(tmp_path / "typo.toml")], capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 1, out.stdout + out.stderr
        # both mistakes in one pass
        assert "line 2 (rule 1): destinations: 'oncal-mail' is not a configured destination" in out.stdout
        assert "(configured: oncall, oncall-mail)" in out.stdout and "line 10 (rule 2): when:" in out.stdout
    assert read_topic(settings, settings.topic_alert_rules, expect=1, timeout=3) == []  # nothing published


RECOVERY_RULES = """
[[rules]]
name = "payment-retries"
when = "recovery_rate"
service = "payment"
method = "retry"
window_minutes = 30
threshold = 80
min_attempts = 10
severity = "critical"
destinations = ["oncall"]
"""


def _retrying(settings: Settings, service: str, episodes: int, failing: int) -> None:
    """``episodes`` calls through ``errstream.retry`` that fail once; the first ``failing`` of them fail twice."""
    client = SdkClient(service, settings=settings)
    for i in range(episodes):
        calls = [0]

        def charge(calls: list[int] = calls, fails: int = 2 if i < failing else 1) -> str:
            calls[0] += 1
            if calls[0] <= fails:
                raise ConnectionRefusedError("bank refused")
            return "ok"

        try:
            retry(attempts=2, backoff=0.0, client=client)(charge)()
        except ConnectionRefusedError:
            pass
    assert client.flush(10)
    client.close()


def test_a_recovery_rate_rule_fires_when_too_few_retries_succeed(
    settings: Settings, ch: Client, services: dict[str, Service], tmp_path: Path
) -> None:
    (tmp_path / "rules.toml").write_text(RECOVERY_RULES)
    with WebhookReceiver() as oncall:
        hooks = orjson.dumps([{"name": "oncall", "url": oncall.url()}]).decode()
        env = {**os.environ, **settings_env(settings), "ERRSTREAM_ALERT_WEBHOOKS": hooks}
        applied = subprocess.run([sys.executable, "-m", "errstream.cli", "alerts", "rules", "apply",
                                  str(tmp_path / "rules.toml")], capture_output=True, text=True, timeout=60, env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        notify = Service("notify", settings, tmp_path, extra_env={
            "ERRSTREAM_ALERT_WEBHOOKS": hooks, "ERRSTREAM_ALERT_RULES_INTERVAL_SECONDS": "0.5"}).start()
        try:
            _retrying(settings, "payment", episodes=20, failing=8)  # 12 of 20 recovered: 60 %, under 80 %
            db = settings.clickhouse_database
            wait_for(lambda: query_rows(ch, f"SELECT sum(attempted), sum(successful) FROM {db}.recovery_counts_1m"),
                     lambda r: r == [(20, 12)], 120, "the episodes counted",
                     diagnostics=lambda: services["sink"].output()[-3000:])
            wait_for(lambda: len(oncall.ok()), lambda n: n >= 1, 60, "the rule's alert at oncall",
                     diagnostics=notify.output)
            rule_alerts = [a for a in read_topic(settings, settings.topic_alerts, expect=10**6, timeout=2)
                           if a["kind"] == "rule"]
            assert [(a["service"], a["severity"], a["title"]) for a in rule_alerts] == [
                ("payment", "critical", "payment-retries: 60.00 % of retry attempts succeeded in 30 min")]
        finally:
            notify.stop()
