"""The walking skeleton, end to end on the real broker and ClickHouse."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from producers.publisher import ErrorPublisher
from producers.synthetic import synthetic_event
from tests.support.kafka import read_topic
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e


def _publish_raw(settings: Settings, payloads: list[bytes]) -> None:
    async def go() -> None:
        async with ErrorPublisher(settings) as pub:
            await pub.publish_many_raw(payloads)

    asyncio.run(go())


def _counts_by_service(ch: Client, settings: Settings) -> dict[str, int]:
    db = settings.clickhouse_database
    try:
        rows = ch.query(f"SELECT service, sum(events) FROM {db}.error_counts_1m GROUP BY service").result_rows
    except Exception:
        return {}
    return {service: int(n) for service, n in rows}


def test_thousand_events_from_three_services_land_exactly(
    settings: Settings, ch: Client, services: dict[str, Service]
) -> None:
    rng = random.Random(42)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    names = ["billing", "checkout", "auth"]
    events = [
        synthetic_event(rng, names[i % 3], timestamp=start + timedelta(seconds=i * 0.5)) for i in range(1000)
    ]
    expected = Counter(e.service for e in events)
    _publish_raw(settings, [e.model_dump_json().encode() for e in events])

    db = settings.clickhouse_database
    counts = wait_for(
        lambda: _counts_by_service(ch, settings), lambda c: sum(c.values()) >= 1000, 120,
        "1,000 events counted in error_counts_1m",
        diagnostics=lambda: services["worker"].output()[-3000:] + services["sink"].output()[-3000:],
    )
    assert counts == dict(expected)
    distinct = ch.query(f"SELECT count(), uniqExact(event_id) FROM {db}.error_events FINAL").result_rows[0]
    assert distinct == (1000, 1000)
    assert set(ch.query(f"SELECT toString(event_id) FROM {db}.error_events").result_columns[0]) == {
        str(e.event_id) for e in events
    }
    # Minutes are event time, in UTC: 1,000 events half a second apart span 9 minutes.
    minutes = ch.query(f"SELECT min(minute), max(minute) FROM {db}.error_counts_1m").result_rows[0]
    assert minutes[0].replace(tzinfo=UTC) == start
    assert minutes[1].replace(tzinfo=UTC) == start + timedelta(minutes=8)


def test_malformed_payloads_go_to_the_dead_letter_topic_with_reasons(
    settings: Settings, ch: Client, services: dict[str, Service]
) -> None:
    rng = random.Random(1)
    good = [synthetic_event(rng, "billing") for _ in range(20)]
    bad = [
        b"this is not json",
        b'["a list", "not an object"]',
        orjson.dumps({"service": "billing", "level": "apocalyptic"}),
        orjson.dumps({"service": "", "message": "empty service"}),
        orjson.dumps({"service": "billing", "tags": {"k": "v" * 5000}}),
        b"\xff\xfe\x00binary",
    ]
    payloads = [g.model_dump_json().encode() for g in good[:10]] + bad + [g.model_dump_json().encode() for g in good[10:]]
    _publish_raw(settings, payloads)

    dead = read_topic(settings, settings.topic_dlq, expect=len(bad), timeout=90)
    assert len(dead) == len(bad)
    by_payload = {d["payload"]: d for d in dead}
    assert by_payload["this is not json"]["reason"] == "invalid_json"
    assert by_payload['["a list", "not an object"]']["reason"] == "invalid_event"
    level = next(d for d in dead if "apocalyptic" in d["payload"])
    assert level["reason"] == "invalid_event" and level["problems"][0]["loc"] == "level"
    empty = next(d for d in dead if "empty service" in d["payload"])
    assert "service" in empty["detail"]
    long_tag = next(d for d in dead if '"tags"' in d["payload"])
    assert "longer than 200" in long_tag["detail"]
    binary = next(d for d in dead if d["payload_encoding"] == "base64")
    assert binary["reason"] == "invalid_json" and binary["payload_size"] == len(b"\xff\xfe\x00binary")
    assert all(d["source_topic"] == settings.topic_errors and d["source_offset"] is not None for d in dead)

    counts = wait_for(lambda: _counts_by_service(ch, settings), lambda c: c.get("billing", 0) >= 20, 90,
                      "the valid events around the bad ones")
    assert counts == {"billing": 20}
