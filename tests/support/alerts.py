"""Publishing AlertEvents (and raw records) in tests: the detectors are not needed to test what follows them."""

from __future__ import annotations

import asyncio
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


def publish_alerts(settings: Settings, alerts: list[AlertEvent]) -> None:
    publish(settings, settings.topic_alerts, [a.model_dump_json().encode() for a in alerts])


def query_rows(ch: Client, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows, or none while the sink has not created the schema yet."""
    try:
        return [tuple(r) for r in ch.query(sql, parameters=parameters).result_rows]
    except DatabaseError:
        return []
