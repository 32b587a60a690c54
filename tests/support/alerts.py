"""Publishing AlertEvents (and raw records) in tests: the detectors are not needed to test what follows them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from errstream_core.settings import Settings
from schemas.alerts import AlertEvent


def publish(settings: Settings, topic: str, payloads: list[bytes], key: bytes | None = None) -> None:
    async def go() -> None:
        producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all")
        await producer.start()
        try:
            for p in payloads:
                await producer.send_and_wait(topic, p, key=key)
        finally:
            await producer.stop()

    asyncio.run(go())


def make_alert(**kw: Any) -> AlertEvent:
    fp = kw.pop("fingerprint", uuid.uuid4().hex)
    defaults: dict[str, Any] = {
        "kind": "spike", "severity": "error", "dedup_key": f"spike:billing:{fp}", "service": "billing",
        "fingerprint": fp, "title": "KeyError: 'cus_1234'", "message": "billing: 412 events in 1 min (baseline 38)",
        "trigger_event_id": uuid.uuid4(), "trigger_event_time": datetime.now(UTC) - timedelta(seconds=2),
        "details": {"count": 412, "baseline": 38.2},
    }
    return AlertEvent(**{**defaults, **kw})


def publish_alerts(settings: Settings, alerts: list[AlertEvent]) -> None:
    publish(settings, settings.topic_alerts, [a.model_dump_json().encode() for a in alerts])


def query_rows(ch: Client, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows, or none while the sink has not created the schema yet."""
    try:
        return [tuple(r) for r in ch.query(sql, parameters=parameters).result_rows]
    except DatabaseError:
        return []
