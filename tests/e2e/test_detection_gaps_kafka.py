"""What detection reads from Kafka when faust skipped records: the hole itself, and where an agent without a
checkpoint starts (gaps.py), on the real broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from stream_processors.detection_agents.gaps import first_to_apply, read_records

pytestmark = pytest.mark.e2e


async def _produce(settings: Settings, topic: str, n: int) -> None:
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs())
    await producer.start()
    try:
        for i in range(n):
            await producer.send_and_wait(topic, key=f"service{i}".encode(), value=f"[{i}]".encode(), partition=0)
    finally:
        await producer.stop()


async def _commit(settings: Settings, group: str, topic: str, offset: int) -> None:
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()


def test_a_hole_is_read_with_keys_and_an_agent_starts_where_its_group_committed(settings: Settings) -> None:
    topic, group = f"{settings.app_id}-gaps", f"{settings.app_id}-gaps-group"

    async def scenario() -> tuple[list[tuple[int, bytes | None, bytes]], int, int]:
        await ensure_topics(settings, [topic])
        await _produce(settings, topic, 6)
        hole = await read_records(settings, topic, 0, 2, 5, agent="detect-services")
        fresh = await first_to_apply(settings, group, topic, 0)  # nothing committed: the partition's start
        await _commit(settings, group, topic, 4)
        return hole, fresh, await first_to_apply(settings, group, topic, 0)

    hole, fresh, committed = asyncio.run(scenario())
    assert hole == [(2, b"service2", b"[2]"), (3, b"service3", b"[3]"), (4, b"service4", b"[4]")]
    assert (fresh, committed) == (0, 4)
