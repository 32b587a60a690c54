"""Escalation on the real stack: an unacknowledged, still-occurring issue alerts once per level; ack stops it."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from schemas.events import ErrorEvent, ExceptionInfo
from tests.support.alerts import query_rows
from tests.support.detection import publish
from tests.support.kafka import read_topic
from tests.support.services import Service, settings_env, wait_for

pytestmark = pytest.mark.e2e


def _event(at: datetime) -> ErrorEvent:
    return ErrorEvent(service="billing", timestamp=at, level="error",
                      exceptions=[ExceptionInfo(type="LedgerLocked", value="ledger is locked by another writer")])



def _escalations(settings: Settings) -> list[dict]:
    return [a for a in read_topic(settings, settings.topic_alerts, expect=10**6, timeout=2)
            if a["kind"] == "escalation"]


def test_an_unacknowledged_issue_escalates_once_per_level_and_acknowledging_stops_it(
    settings: Settings, ch: Client, services: dict[str, Service], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    publish(settings, [_event(now - timedelta(minutes=120)), _event(now - timedelta(seconds=5))])
    db = settings.clickhouse_database
    groups = wait_for(lambda: query_rows(ch, f"SELECT fingerprint, events FROM {db}.v_error_groups"),
                      lambda r: len(r) == 1 and r[0][1] == 2, 120, "the issue with its two events")
    fingerprint = groups[0][0]
    env = {"ERRSTREAM_ESCALATION_AFTER_MINUTES": "[60, 180]", "ERRSTREAM_ESCALATION_INTERVAL_SECONDS": "0.5",
           "ERRSTREAM_ESCALATION_ACTIVE_MINUTES": "15"}
    notify = Service("notify", settings, tmp_path, extra_env=env).start()
    try:
        first = wait_for(lambda: _escalations(settings), lambda a: len(a) >= 1, 90, "the first escalation",
                         diagnostics=notify.output)
        time.sleep(3)  # several more rounds: a level fires once, not once per round
        got = _escalations(settings)
        assert len(got) == 1 and got[0]["fingerprint"] == fingerprint
        assert got[0]["details"]["level"] == 1 and got[0]["severity"] == "error"
        assert "unacknowledged after 60 min and still occurring" in got[0]["message"]
        sql = f"SELECT toString(alert_id), kind FROM {db}.alerts WHERE kind = 'escalation'"
        stored = wait_for(lambda: query_rows(ch, sql), lambda r: len(r) >= 1, 30, "the escalation stored")
        assert stored == [(first[0]["alert_id"], "escalation")]

        ack = subprocess.run([sys.executable, "-m", "errstream.cli", "issue", "ack", fingerprint, "-m", "on it"],
                             capture_output=True, text=True, timeout=60,
                             env={**__import__("os").environ, **settings_env(settings)})
        assert ack.returncode == 0, ack.stdout + ack.stderr
        wait_for(lambda: query_rows(ch, f"SELECT toString(status) FROM {db}.issue_status FINAL"),
                 lambda r: r == [("acknowledged",)], 60, "the acknowledgement stored")
        # the issue now waits long enough for level 2, but it is acknowledged: nothing more
        publish(settings, [_event(now - timedelta(minutes=240))])
        wait_for(lambda: query_rows(ch, f"SELECT events FROM {db}.v_error_groups"), lambda r: r == [(3,)], 60,
                 "the older event counted")
        time.sleep(3)
        assert len(_escalations(settings)) == 1
        assert "Traceback" not in notify.output()
    finally:
        notify.stop()
    assert orjson.loads(orjson.dumps(first[0]))["kind"] == "escalation"
