"""Auto-resolve on the real stack: a quiet issue is resolved by errstream (recorded as automatic), a service set
to never keeps its issues open, a recent issue stays open, and the auto-resolved issue regresses when it returns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from reports.report import build_report
from schemas.issue_status import AUTO_RESOLVER
from tests.support.alerts import query_rows
from tests.support.detection import error, of_kind, publish, wait_alerts
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e

NOTIFY_ENV = {"ERRSTREAM_AUTO_RESOLVE_MINUTES": "10", "ERRSTREAM_AUTO_RESOLVE_INTERVAL_SECONDS": "1",
              "ERRSTREAM_AUTO_RESOLVE_SERVICE_MINUTES": json.dumps({"batch": 0})}


def _history(ch: Client, db: str) -> list[tuple[str, str, str, str]]:
    return [tuple(r) for r in query_rows(  # type: ignore[misc]
        ch, f"SELECT fingerprint, toString(status), changed_by, action FROM {db}.issue_status_history FINAL"
            " ORDER BY changed_at")]


def test_a_quiet_issue_is_auto_resolved_and_regresses_when_it_returns(
    settings: Settings, ch: Client, services: dict[str, Service], tmp_path: Path
) -> None:
    db = settings.clickhouse_database
    old = datetime.now(UTC) - timedelta(minutes=30)
    publish(settings, [error("api", "quiet", old), error("batch", "nightly", old),
                       error("api", "recent", datetime.now(UTC))])
    groups = wait_for(lambda: query_rows(ch, f"SELECT title, fingerprint FROM {db}.v_error_groups"),
                      lambda rows: len(rows) == 3, 90, "three issues stored",
                      diagnostics=lambda: services["sink"].output()[-3000:])
    fp = {title.split(": ")[-1]: fingerprint for title, fingerprint in groups}  # "RuntimeError: quiet failed"

    notify = Service("notify", settings, tmp_path, extra_env=NOTIFY_ENV).start()
    try:
        history = wait_for(lambda: _history(ch, db), lambda h: len(h) >= 1, 90, "the auto-resolution",
                           diagnostics=notify.output)
        # one round decided all three: only the quiet issue of a service that allows it
        assert history == [(fp["quiet failed"], "resolved", AUTO_RESOLVER, "auto_resolve")]
        status = dict(query_rows(ch, f"SELECT fingerprint, status FROM {db}.v_error_groups"))
        assert status[fp["quiet failed"]] == "resolved" and status[fp["nightly failed"]] == "new"

        # it comes back: a regression alert, and the issue reads regressed
        publish(settings, [error("api", "quiet", datetime.now(UTC))])
        got = wait_alerts(settings, lambda a: len(of_kind(a, "regression")) >= 1, 90, "the regression",
                          diagnostics=lambda: services["worker"].output()[-3000:])
        [regression] = of_kind(got, "regression")
        assert regression["fingerprint"] == fp["quiet failed"]
        assert regression["details"]["resolved_by"] == AUTO_RESOLVER
        wait_for(lambda: dict(query_rows(ch, f"SELECT fingerprint, status FROM {db}.v_error_groups")),
                 lambda s: s.get(fp["quiet failed"]) == "regressed", 60, "the issue to read regressed")
    finally:
        notify.stop()

    # its time to resolution counts as auto-resolved, not manual
    times = {t.kind: t for t in build_report(ch, db, "2h").recovery.times}
    assert times["auto_resolved"].recoveries == 1 and times["manual"].recoveries == 0
    seconds = times["auto_resolved"].avg_seconds
    assert seconds is not None and 30 * 60 - 5 <= seconds <= 30 * 60 + 180
    rows = query_rows(ch, f"SELECT kind, recoveries FROM {db}.v_recovery_times ORDER BY kind")
    assert rows == [("auto_resolved", 1), ("automatic", 0)]
