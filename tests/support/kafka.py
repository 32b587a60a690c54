"""Reading topics back in tests, with the real aiokafka client."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from errstream_core.settings import Settings
from producers.publisher import ErrorPublisher
from schemas.events import ErrorEvent


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


async def _read_records(settings: Settings, topic: str) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[ConsumerRecord] = []
        remaining = {tp for tp in parts if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1_000)
            for tp, msgs in batch.items():
                out.extend(msgs)
                if msgs and msgs[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


def read_records(settings: Settings, topic: str) -> list[ConsumerRecord]:
    """Every record of a topic, from the beginning to the end offsets at the time of the call."""
    return asyncio.run(_read_records(settings, topic))


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public "refresh" call
    return consumer.partitions_for_topic(topic) or set()


def read_to_end(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) of a topic, from the beginning to the end offsets at the time of the call."""
    return [(r.key, r.value) for r in read_records(settings, topic)]


async def _lag(settings: Settings, group: str, topics: list[str]) -> int:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = {tp: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(group)).items()}
        parts = [TopicPartition(t, p) for t in topics for p in await _partitions(consumer, t)]
        ends = await consumer.end_offsets(parts)
        return sum(max(0, end - max(committed.get(tp, 0), 0)) for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


def group_lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Records of ``topics`` that consumer group ``group`` has not committed yet."""
    return asyncio.run(_lag(settings, group, topics))


async def publish_until_acknowledged(pub: ErrorPublisher, batch: list[ErrorEvent], attempts: int = 30) -> int:
    """Send ``batch`` until the broker acknowledges it; how many times it was sent again.

    While a broker is down a batch may time out and go again. A batch sent twice carries the same event
    ids, and the pipeline must count each id once (the tests that use this check that too).
    """
    for resends in range(attempts):
        try:
            await asyncio.wait_for(pub.publish_many(batch), 60)
            return resends
        except (KafkaError, TimeoutError):
            await asyncio.sleep(1)
    raise AssertionError(f"a batch was not acknowledged in {attempts} attempts")
