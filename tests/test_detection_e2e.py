"""Detection scenarios on the real broker with the real `errstream worker`, driven by event timestamps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from errstream.settings import Settings
from schemas.chains import chains_topic
from schemas.issue_status import IssueStatusChange
from tests.detection_helpers import (
    committed,
    error,
    alerts,
    of_kind,
    publish,
    publish_status,
    steady,
    trace_id,
    wait_alerts,
)
from tests.kafka_helpers import read_topic
from tests.pipeline import Service, wait_for

pytestmark = pytest.mark.e2e

FAST_FAILOVER = {"ERRSTREAM_WORKER_SESSION_TIMEOUT_SECONDS": "6"}  # the broker's minimum


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    svc = Service("worker", settings, tmp_path).start()
    yield svc
    svc.stop()


def _minute_ago(minutes: int) -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes)


def test_new_issue_fires_once_even_across_a_sigkill_restart(settings: Settings, tmp_path: Path) -> None:
    first = Service("worker", settings, tmp_path, extra_env=FAST_FAILOVER).start()
    try:
        now = datetime.now(UTC)
        publish(settings, [error("billing", "charge", now + timedelta(seconds=i)) for i in range(6)])
        got = wait_alerts(settings, lambda a: len(of_kind(a, "new_issue")) >= 1, what="the new_issue alert",
                          diagnostics=lambda: first.output()[-3000:])
        fingerprint = of_kind(got, "new_issue")[0]["fingerprint"]
        time.sleep(1.0)  # the changelog write went out with the alert; give it a moment, nothing more
    finally:
        first.kill()
    second = Service("worker", settings, tmp_path, extra_env=FAST_FAILOVER).start()
    try:
        publish(settings, [error("billing", "charge", now + timedelta(seconds=10 + i)) for i in range(6)]
                + [error("billing", "refund", now + timedelta(seconds=20))])
        got = wait_alerts(settings, lambda a: len(of_kind(a, "new_issue")) >= 2 and len(of_kind(a, "threshold")) >= 1,
                          what="new_issue of the second issue and the 10-events threshold",
                          diagnostics=lambda: second.output()[-3000:])
        time.sleep(2)
        got = alerts(settings)
    finally:
        second.stop()
    new = of_kind(got, "new_issue")
    mine = [a for a in new if a["fingerprint"] == fingerprint]
    assert len(mine) == 1, new
    assert len(new) == 2
    # the count survived the restart too: 12 events cross 10 exactly once, and not 100
    thresholds = of_kind(got, "threshold")
    assert [(a["fingerprint"], a["details"]["threshold"]) for a in thresholds] == [(fingerprint, 10)]
    assert mine[0]["dedup_key"] == f"new_issue:{fingerprint}" and mine[0]["severity"] == "warning"
    assert mine[0]["service"] == "billing" and mine[0]["title"].startswith("New issue in billing")
