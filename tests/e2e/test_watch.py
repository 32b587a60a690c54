"""`errstream watch` on the real stack: the live view shows the errors of the last minutes, their trend,
new issues and spikes, recovery rates, honours its filters, and costs two ClickHouse queries per refresh."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client
from rich.console import Console

from errstream_core.settings import Settings
from reports.watch import WatchQueries, render_plain, render_rich
from schemas.events import ErrorEvent, Recovery
from tests.support.cli import cli
from tests.support.detection import publish
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e


def _counted(ch: Client, db: str) -> int:
    try:
        return int(ch.query(f"SELECT sum(events) FROM {db}.error_counts_1m").result_rows[0][0] or 0)
    except Exception:  # noqa: BLE001 - tables appear when the sink has migrated
        return 0


def test_watch_shows_the_last_minutes_live_with_filters_and_two_queries_per_refresh(
    settings: Settings, ch: Client, services: dict[str, Service]
) -> None:
    db = settings.clickhouse_database
    now = datetime.now(UTC)
    events = [ErrorEvent(service="payment", level="warning", message="bank connection refused",
                         timestamp=now - timedelta(seconds=i % 50),
                         recovery=Recovery(successful=i % 4 != 0, method="retry", duration_ms=100))
              for i in range(40)]
    events += [ErrorEvent(service="checkout", level="critical", message="cart store unreachable",
                          timestamp=now - timedelta(seconds=i)) for i in range(12)]
    events += [ErrorEvent(service="checkout", level="error", message="old template missing",
                          timestamp=now - timedelta(minutes=7))]  # the previous window only
    publish(settings, events)
    wait_for(lambda: _counted(ch, db), lambda n: n == len(events), 120, "events counted",
             diagnostics=lambda: services["sink"].output()[-3000:])
    wait_for(lambda: ch.query(f"SELECT sum(episodes) FROM {db}.recovery_counts_1m").result_rows[0][0],
             lambda n: n == 40, 60, "recovery counted (the insert after the counts)")

    watch = WatchQueries(ch, db, minutes=5, top=10)
    started = time.perf_counter()
    snap = watch.snapshot()
    took = time.perf_counter() - started
    assert watch.queries == 2 and took < 10  # generous: the machine is shared
    assert [(i.service, i.events, i.level) for i in snap.issues] == [("payment", 40, "warning"),
                                                                   ("checkout", 12, "critical")]
    payment, checkout = snap.issues
    assert (payment.recovery_attempted, payment.recovery_successful) == (40, 30)
    assert payment.is_new and payment.is_spike and checkout.is_spike  # nothing the window before
    assert sum(payment.per_minute) == 40 and len(payment.per_minute) == 5
    assert {s.service: (s.events, s.previous) for s in snap.services} == {"payment": (40, 0), "checkout": (12, 1)}

    text = render_plain(snap)
    assert "bank connection refused" in text and "recovered 75% of 40" in text and "SPIKE" in text
    console = Console(record=True, width=200, force_terminal=True)
    console.print(render_rich(snap))
    shown = console.export_text()
    assert "cart store unreachable" in shown and "75% of 40" in shown and "NEW" in shown

    critical = WatchQueries(ch, db, level="critical").snapshot()
    assert [i.service for i in critical.issues] == ["checkout"]

    out = cli(settings, "watch", "--plain", "--count", "2", "--interval", "1", "--service", "payment")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("errstream watch ·") == 2  # two refreshes
    assert "bank connection refused" in out.stdout and "cart store unreachable" not in out.stdout

    bad = cli(settings, "watch", "--plain", "--count", "1", "--level", "loud")
    assert bad.returncode == 2 and "--level must be one of" in bad.stdout + bad.stderr
    assert cli(settings, "watch", "--interval", "0").returncode == 2
