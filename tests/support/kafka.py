"""Reading topics back in tests, with the real aiokafka client."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer

from errstream_core.settings import Settings


async def _read(settings: Settings, topic: str, expect: int, timeout: float) -> list[dict]:
    consumer = AIOKafkaConsumer(
        topic, **settings.kafka_client_kwargs(), group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                out.extend(orjson.loads(m.value) for m in msgs)
    finally:
        await consumer.stop()
    return out


def read_topic(settings: Settings, topic: str, expect: int, timeout: float = 60) -> list[dict]:
    """Records of a topic from the beginning, until ``expect`` arrived or the timeout."""
    return asyncio.run(_read(settings, topic, expect, timeout))
