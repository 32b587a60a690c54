"""A flush writes several partitions in one insert; replayed by any sinks, in any split, it counts once.

The sink writes every partition it buffered in one insert per table (sinks/clickhouse/flush_plan.py). A sink
that dies after recording the flush in the batch log — before its insert, or after it but before the Kafka
commit — leaves the flush to whoever takes its partitions next, possibly several sinks each owning part of
it. These tests stop a real sink at exactly those two points (as a SIGKILL could) and hand the partitions to
two other sinks in a split the flush never had, on the real broker and ClickHouse.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from producers.synthetic import synthetic_event
from sinks.clickhouse.event_sink import ClickHouseSink
from stream_processors.event_processor import EventProcessor

pytestmark = pytest.mark.e2e

PER_PARTITION = {0: 40, 1: 25, 2: 33}


async def _produce(settings: Settings) -> tuple[int, int]:
    """Processed events on partitions 0-2 (an event id header each, as the worker writes them): (counted, stored)."""
    await ensure_topics(settings, timeout=60)
    rng = random.Random(11)
    processor = EventProcessor()
    start = datetime.now(UTC) - timedelta(minutes=20)
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs())
    await producer.start()
    stored = 0
    try:
        for partition, n in PER_PARTITION.items():
            for i in range(n):
                raw = synthetic_event(rng, timestamp=start + timedelta(seconds=i)).model_dump_json().encode()
                out = processor.process(raw)
                assert out.processed is not None and out.encoded is not None
                stored += out.processed.stored
                await producer.send_and_wait(settings.topic_processed, out.encoded, partition=partition,
                                             headers=[("event_id", out.processed.event.event_id.hex.encode())])
    finally:
        await producer.stop()
    assert 0 < stored < sum(PER_PARTITION.values())  # sampled as the worker does: some counted only
    return sum(PER_PARTITION.values()), stored


async def _records(settings: Settings, partition: int) -> list[object]:
    tp = TopicPartition(settings.topic_processed, partition)
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        out: list[object] = []
        while len(out) < PER_PARTITION[partition]:
            out.extend((await consumer.getmany(tp, timeout_ms=2000)).get(tp, []))
        return out
    finally:
        await consumer.stop()


async def _sink_with(settings: Settings, partitions: list[int]) -> ClickHouseSink:
    """A real sink step that owns ``partitions`` from offset 0 and has their records buffered."""
    sink = ClickHouseSink(settings)
    await sink.start()
    tps = {TopicPartition(settings.topic_processed, p) for p in partitions}
    await sink.assign(tps, dict.fromkeys(tps))
    for tp in sorted(tps, key=lambda t: t.partition):
        await sink.submit(tp, await _records(settings, tp.partition))
    return sink


def _totals(ch: Client, settings: Settings) -> tuple[int, int]:
    db = settings.clickhouse_database
    counted = ch.query(f"SELECT sum(events) FROM {db}.error_counts_1m").result_rows[0][0]
    stored = ch.query(f"SELECT count() FROM {db}.error_events").result_rows[0][0]
    return int(counted or 0), int(stored or 0)


async def _replay_split(settings: Settings) -> dict[int, int]:
    """Partition 1 to one new sink, 0 and 2 to another; each writes what it owns and reports it done."""
    done: dict[int, int] = {}
    for partitions in ([1], [0, 2]):
        sink = await _sink_with(settings, partitions)
        try:
            done.update({tp.partition: end for tp, end in (await sink.poll(force=True)).items()})
        finally:
            await sink.close()
    return done


def test_a_flush_recorded_but_never_written_is_rebuilt_whole_by_the_first_sink_that_replays_it(
    settings: Settings, ch: Client,
) -> None:
    async def scenario() -> dict[int, int]:
        expected = await _produce(settings)
        first = await _sink_with(settings, [0, 1, 2])
        batches = first._cut()
        assert sorted(b.tp.partition for b in batches) == [0, 1, 2]  # one flush of three partitions
        await first._record(batches)  # in the batch log; killed before its insert
        await first.close()
        assert _totals(ch, settings) == (0, 0)
        done = await _replay_split(settings)
        assert _totals(ch, settings) == expected
        return done

    done = asyncio.run(scenario())
    assert done == {p: n for p, n in PER_PARTITION.items()}  # every partition committed past the flush


def test_a_flush_written_but_not_committed_is_dropped_by_token_when_replayed_in_another_split(
    settings: Settings, ch: Client,
) -> None:
    async def scenario() -> None:
        expected = await _produce(settings)
        first = await _sink_with(settings, [0, 1, 2])
        assert set((await first.poll(force=True)).values()) == set(PER_PARTITION.values())
        await first.close()  # written; killed before the Kafka commit
        assert _totals(ch, settings) == expected
        await _replay_split(settings)
        assert _totals(ch, settings) == expected

    asyncio.run(scenario())
