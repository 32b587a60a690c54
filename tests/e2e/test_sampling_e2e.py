"""Sampling and rate limits on the real worker and sink: raw events are dropped, counts stay exact."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from producers.capture import event_from_exception
from producers.publisher import ErrorPublisher
from schemas.events import ErrorEvent, Level
from stream_processors.event_processor import EventProcessor
from tests.support.services import Service, running_services, wait_for

pytestmark = pytest.mark.e2e

SAMPLING_ENV = {
    "ERRSTREAM_SAMPLE_RATES": json.dumps({"info": 0.1, "debug": 0.01, "warning": 0.5}),
    "ERRSTREAM_SERVICE_SAMPLE_RATES": json.dumps({"auth": {"warning": 1.0}}),
    "ERRSTREAM_RATE_LIMIT_PER_FINGERPRINT": "25",
}
LOG_LEVELS: tuple[Level, ...] = ("info", "info", "info", "debug", "warning", "warning")
LEVEL_RATES = {"info": 0.1, "debug": 0.01, "warning": 0.5, "error": 1.0}


@pytest.fixture
def sampled_services(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Service]]:
    """Worker with sampling configured through ERRSTREAM_* variables, and the sink."""
    with running_services(settings, tmp_path, SAMPLING_ENV) as running:
        yield running


def _charge(amount: int) -> None:
    raise ValueError(f"card declined for amount {amount}.00 EUR")


def _traffic(start: datetime) -> list[ErrorEvent]:
    rng = random.Random(9)
    events: list[ErrorEvent] = []

    def eid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    for i in range(600):  # log-style events over 5 minutes, 10 loggers, three levels
        level = LOG_LEVELS[i % len(LOG_LEVELS)]
        events.append(ErrorEvent(
            service="billing", level=level, logger=f"billing.job{i % 10}", event_id=eid(),
            message=f"job {rng.randint(1, 9999)} took {rng.randint(100, 999)} ms",
            timestamp=start + timedelta(seconds=i * 0.5),
        ))
    for i in range(40):  # warnings of a service whose override stores them all
        events.append(ErrorEvent(service="auth", level="warning", message=f"slow login {i} ms", event_id=eid(),
                                 timestamp=start + timedelta(seconds=i * 6)))  # 10 a minute: under the limit
    burst_at = start + timedelta(minutes=2)
    for i in range(300):  # one bug storming within one minute: 25 stored, all counted
        try:
            _charge(rng.randint(1, 500))
        except ValueError as exc:
            events.append(event_from_exception(exc, service="checkout", event_id=eid(),
                                               timestamp=burst_at + timedelta(milliseconds=i * 150)))
    return events


def _publish(settings: Settings, events: list[ErrorEvent]) -> None:
    async def go() -> None:
        async with ErrorPublisher(settings) as pub:
            await pub.publish_many_raw([e.model_dump_json().encode() for e in events])

    asyncio.run(go())


def _total_counted(ch: Client, db: str) -> int:
    try:
        return int(ch.query(f"SELECT sum(events) FROM {db}.error_counts_1m").result_rows[0][0] or 0)
    except Exception:  # noqa: BLE001 - tables appear when the sink has migrated
        return 0


def test_counts_are_exact_while_sampling_and_rate_limits_drop_raw_events(
    settings: Settings, ch: Client, sampled_services: dict[str, Service]
) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    events = _traffic(start)
    # What the worker must decide, computed with the same configuration in-process: the
    # decisions depend only on event ids and event times, not on timing or order.
    local = EventProcessor.from_settings(Settings(**{k.removeprefix("ERRSTREAM_").lower(): json.loads(v)
                                                     for k, v in SAMPLING_ENV.items()}))
    expected = [local.process(e.model_dump_json().encode()).processed for e in events]
    expected_stored = Counter((p.event.level, p.event.service) for p in expected if p is not None and p.stored)
    _publish(settings, events)

    db = settings.clickhouse_database
    total = wait_for(
        lambda: _total_counted(ch, db), lambda n: n >= len(events), 120, f"{len(events)} events counted",
        diagnostics=lambda: sampled_services["worker"].output()[-3000:] + sampled_services["sink"].output()[-3000:],
    )
    assert total == len(events)  # every published event counted exactly once
    rows = ch.query(f"SELECT toString(level), sum(events) FROM {db}.error_counts_1m GROUP BY level").result_rows
    by_level = {level: int(n) for level, n in rows}
    assert by_level == dict(Counter(e.level for e in events))

    stored_rows = ch.query(f"SELECT toString(level), service, sample_rate FROM {db}.error_events FINAL").result_rows
    assert len(stored_rows) == sum(expected_stored.values()) < len(events)
    assert Counter((level, service) for level, service, _ in stored_rows) == expected_stored
    for level, service, rate in stored_rows:
        assert rate == pytest.approx(1.0 if service == "auth" else LEVEL_RATES[level])
    assert expected_stored[("warning", "auth")] == 40  # the per-service override stores them all
    assert expected_stored[("debug", "billing")] < 10 and expected_stored[("info", "billing")] < 60

    # the storm: 300 counted, 25 stored, and error_counts_1m says both
    burst = ch.query(f"SELECT sum(events), sum(stored) FROM {db}.error_counts_1m WHERE service = 'checkout'"
                     ).result_rows[0]
    assert tuple(int(x) for x in burst) == (300, 25)
    stored_total = ch.query(f"SELECT sum(stored) FROM {db}.error_counts_1m").result_rows[0][0]
    assert int(stored_total) == len(stored_rows)
