"""The hostile corpus on the real stack: `errstream worker` and `errstream sink`, Kafka, embedded ClickHouse.

Hostile records (tests/support/hostile.py) are published interleaved with
valid events over every partition of ``errors``. Every valid event must be
counted once in ``error_counts_1m`` and stored once in ``error_events``; each
hostile record must end as its case says — stored, stored with the documented
timestamp adjustment, or on ``errors.dlq`` with its stage and reason — while
both processes stay up and commit past every record on every partition.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from producers.synthetic import synthetic_event
from tests.support.hostile import hostile_corpus
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e

VALID = 300


async def _publish(settings: Settings, records: list[tuple[bytes | None, bytes]]) -> None:
    """Round-robin over the partitions, so every partition carries hostile and valid records."""
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all", compression_type="zstd",
                                max_request_size=8_000_000)
    await producer.start()
    try:
        for i, (key, value) in enumerate(records):
            await producer.send(settings.topic_errors, value, key=key, partition=i % settings.topic_partitions)
        await producer.flush()
    finally:
        await producer.stop()


async def _read_keyed(settings: Settings, topic: str) -> list[tuple[bytes | None, dict]]:
    consumer = AIOKafkaConsumer(topic, **settings.kafka_client_kwargs(), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[bytes | None, dict]] = []
    try:
        while batch := await consumer.getmany(timeout_ms=1_500):
            out.extend((m.key, orjson.loads(m.value)) for msgs in batch.values() for m in msgs)
    finally:
        await consumer.stop()
    return out


async def _lag(settings: Settings, group: str, topic: str) -> dict[int, tuple[int, int]]:
    """partition → (committed offset of ``group``, end offset)."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: ((await consumer.committed(tp)) or 0, ends[tp]) for tp in partitions}
    finally:
        await consumer.stop()


def _lag_now(settings: Settings, group: str, topic: str) -> dict[int, tuple[int, int]]:
    return asyncio.run(_lag(settings, group, topic))


def _scalar(ch: Client, sql: str) -> int:
    try:
        return int(ch.query(sql).result_rows[0][0] or 0)
    except Exception:  # the sink has not created the tables yet
        return -1


def test_hostile_records_never_stop_the_pipeline_and_each_ends_as_documented(
    settings: Settings, ch: Client, services: dict[str, Service]
) -> None:
    now = datetime.now(UTC)
    cases = hostile_corpus(now)
    rng = random.Random(11)
    valid = [synthetic_event(rng, rng.choice(["billing", "checkout"]),
                             timestamp=now - timedelta(seconds=rng.uniform(0, 600))) for _ in range(VALID)]
    records: list[tuple[bytes | None, bytes]] = []
    hostile = iter(cases)
    for i, event in enumerate(valid):  # hostile records between valid ones, on every partition
        records.append((None, event.model_dump_json().encode()))
        if i % 4 == 3 and (case := next(hostile, None)) is not None:
            records.append((case.name.encode(), case.raw))
    records.extend((c.name.encode(), c.raw) for c in hostile)
    assert sum(1 for k, _ in records if k) == len(cases)
    asyncio.run(_publish(settings, records))

    db = settings.clickhouse_database
    kept = [c for c in cases if not c.expect.startswith("dlq")]
    dead = {c.name: c for c in cases if c.expect.startswith("dlq")}

    def logs() -> str:
        return services["worker"].output()[-4000:] + services["sink"].output()[-4000:]

    total = wait_for(lambda: _scalar(ch, f"SELECT sum(events) FROM {db}.error_counts_1m"),
                     lambda n: n >= VALID + len(kept), 240, "every valid event counted", diagnostics=logs)
    letters = wait_for(lambda: asyncio.run(_read_keyed(settings, settings.topic_dlq)),
                       lambda got: len(got) >= len(dead), 120, "every hostile record dead-lettered",
                       diagnostics=logs)

    # All valid events counted and stored once; the hostile ones that are valid too, once each.
    assert total == VALID + len(kept)
    by_service = {service: int(n) for service, n in ch.query(
        f"SELECT service, sum(events) FROM {db}.error_counts_1m GROUP BY service").result_rows}
    assert by_service == {**Counter(e.service for e in valid), "hostile": len(kept)}
    rows = ch.query(f"SELECT toString(event_id), timestamp, original_timestamp FROM {db}.error_events FINAL"
                    ).result_rows
    assert len(rows) == VALID + len(kept)
    assert {r[0] for r in rows} >= {str(e.event_id) for e in valid}
    stored = {r[0]: r for r in rows}
    for case in kept:
        event_id, timestamp, original = stored[case.event_id]
        if case.expect == "adjusted":  # stored at the receive time, the original kept
            assert original and abs(timestamp.replace(tzinfo=UTC) - now) < timedelta(minutes=10), case.name
        else:
            assert original == "" and abs(timestamp.replace(tzinfo=UTC) - now) < timedelta(seconds=1), case.name

    # Every hostile record that is not an event is on errors.dlq once, with the stage and reason of its case.
    keyed = {key.decode(): letter for key, letter in letters if key}
    assert len(letters) == len(dead) and set(keyed) == set(dead)
    for name, case in dead.items():
        letter = keyed[name]
        assert f"dlq:{letter['stage']}:{letter['reason']}" == case.expect, (name, letter["detail"])
        assert letter["detail"] and letter["source_topic"] == settings.topic_errors, name
        assert letter["source_offset"] is not None and letter["payload_size"] == len(case.raw), name
    assert "nested" in keyed["context-depth-5000"]["detail"]
    assert "integer out of range" in keyed["int-400-digits"]["detail"]
    assert "finite" in keyed["nan"]["detail"]

    # Both processes are up, and each committed past every record on every partition.
    assert services["worker"].proc is not None and services["worker"].proc.poll() is None, logs()
    assert services["sink"].proc is not None and services["sink"].proc.poll() is None, logs()
    for group, topic in ((f"{settings.app_id}-process", settings.topic_errors),
                         (settings.sink_group, settings.topic_processed)):
        lag = wait_for(functools.partial(_lag_now, settings, group, topic),
                       lambda offsets: all(c == end for c, end in offsets.values()), 60,
                       f"{group} committed to the end of {topic}", diagnostics=logs)
        assert len(lag) == settings.topic_partitions, (group, lag)
        # unkeyed records reach every partition of errors; the processed topic is keyed by fingerprint,
        # and which partitions a handful of issues hash to is up to their fingerprints
        assert all(end > 0 for _, end in lag.values()) or topic != settings.topic_errors, (group, lag)
    assert "Traceback" not in services["worker"].output() and "Traceback" not in services["sink"].output()
