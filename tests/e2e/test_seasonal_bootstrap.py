"""A cold worker's seasonal profiles, bootstrapped from ClickHouse ``error_counts_1h`` (real server)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from sinks.clickhouse.migrate import migrate
from stream_processors.detection_agents.spikes import hourly_history
from stream_processors.detection_rules.config import DetectionConfig
from stream_processors.detection_rules.services import ServiceDetector

NOW = datetime(2026, 12, 7, 12, 30, tzinfo=UTC).timestamp()
UNTIL = int(NOW // 3_600)


def _rows(service: str, hours: range) -> list[list[object]]:
    """Events per hour: 600/h at day (08–18 UTC), 120/h at night; split over two issues and two levels."""
    out: list[list[object]] = []
    for h in hours:
        per_hour = 600 if 8 <= h % 24 < 18 else 120
        at = datetime.fromtimestamp(h * 3_600, UTC)
        out += [[at, service, "prod", "a" * 32, "error", per_hour // 2, per_hour // 2],
                [at, service, "prod", "b" * 32, "warning", per_hour // 2, per_hour // 2]]
    return out


def test_a_cold_worker_learns_the_time_of_day_from_hourly_counts(settings: Settings, ch: Client) -> None:
    migrate(settings)
    rows = _rows("checkout", range(UNTIL - 3 * 24, UNTIL)) + _rows("newbie", range(UNTIL - 5, UNTIL))
    rows += _rows("checkout", range(UNTIL - 30 * 24, UNTIL - 29 * 24))  # older than the 14 days asked for
    ch.insert(f"{settings.clickhouse_database}.error_counts_1h", rows,
              column_names=["hour", "service", "environment", "fingerprint", "level", "events", "stored"])
    got = hourly_history(settings, 14, now=NOW)
    assert got is not None
    history, since, until = got
    assert (since, until) == (UNTIL - 14 * 24, UNTIL)
    assert set(history) == {"checkout", "newbie"}
    assert len(history["checkout"]) == 72 and history["checkout"][UNTIL - 1] == 600  # 12:00 UTC, two rows summed
    det = ServiceDetector(DetectionConfig())
    rule = det.cfg.spike
    warm = det.bootstrapped(None, history["checkout"], since, until).baseline
    assert warm.shaped and warm.n >= rule.warmup
    assert warm.expected(UNTIL * 3_600 + 90 * 60, rule) == pytest.approx(10, rel=0.05)  # 14:00: 600/h
    assert warm.expected((UNTIL + 14) * 3_600, rule) == pytest.approx(2, rel=0.05)  # 02:00: 120/h
    cold = det.bootstrapped(None, history["newbie"], since, until).baseline  # 5 hours: it learns live
    assert not cold.shaped and cold.n == 0


def test_no_clickhouse_means_no_bootstrap_and_one_log_line(settings: Settings,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    closed = settings.model_copy(update={"clickhouse_url": "http://127.0.0.1:9"})  # nothing listens on port 9
    with caplog.at_level(logging.WARNING, logger="errstream.detect"):
        assert hourly_history(closed, 14, now=NOW) is None
    lines = [r.getMessage() for r in caplog.records if r.name == "errstream.detect"]
    assert len(lines) == 1 and lines[0].startswith("detection starts without seasonal history"), lines
    assert hourly_history(settings.model_copy(update={"spike_bootstrap_days": 0}), 0, now=NOW) is None
