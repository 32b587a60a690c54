"""Counts stay exact when the sink or the worker dies, and when the sink re-reads old offsets."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from producers.synthetic import synthetic_event
from tests.support.detection import publish
from tests.support.services import STORE_EVERYTHING_ENV, Service, wait_for

pytestmark = pytest.mark.e2e


def _publish(settings: Settings, count: int, seed: int) -> None:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(minutes=30)
    events = [synthetic_event(rng, timestamp=start + timedelta(seconds=i)) for i in range(count)]

    publish(settings, events)


def _totals(ch: Client, settings: Settings) -> tuple[int, int]:
    db = settings.clickhouse_database
    try:
        counted = ch.query(f"SELECT sum(events) FROM {db}.error_counts_1m").result_rows[0][0]
        stored = ch.query(f"SELECT count() FROM {db}.error_events").result_rows[0][0]
    except Exception:  # noqa: BLE001 - the schema appears when the sink starts
        return (0, 0)
    return int(counted or 0), int(stored or 0)


async def _group_offsets(settings: Settings, reset_to: int | None = None, group: str | None = None,
                         topic: str | None = None) -> tuple[int, int]:
    """(committed, end) offsets of a group (default: the sink's) summed over partitions; optionally reset them."""
    group = group or settings.sink_group
    topic = topic or settings.topic_processed
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        if reset_to is not None:
            await consumer.commit({tp: OffsetAndMetadata(reset_to, "") for tp in parts})
        ends = await consumer.end_offsets(parts)
        committed = [await consumer.committed(tp) or 0 for tp in parts]
        return sum(committed), sum(ends.values())
    finally:
        await consumer.stop()


def test_re_running_the_sink_over_the_same_offsets_changes_no_count(
    settings: Settings, ch: Client, tmp_path: Path
) -> None:
    _publish(settings, 2_000, seed=3)
    worker = Service("worker", settings, tmp_path, STORE_EVERYTHING_ENV).start()
    sink = Service("sink", settings, tmp_path).start()
    try:
        wait_for(lambda: _totals(ch, settings), lambda t: t[0] >= 2_000, 120, "first pass",
                 diagnostics=lambda: sink.output()[-3000:])
        wait_for(lambda: asyncio.run(_group_offsets(settings)), lambda o: o[0] == o[1], 60, "sink caught up")
        sink.stop()
        first_pass = _totals(ch, settings)
        assert first_pass == (2_000, 2_000)

        asyncio.run(_group_offsets(settings, reset_to=0))  # an operator replays everything
        sink = Service("sink", settings, tmp_path).start()
        wait_for(lambda: asyncio.run(_group_offsets(settings)), lambda o: o[0] == o[1] and o[0] > 0, 120,
                 "the replay to finish", diagnostics=lambda: sink.output()[-3000:])
        assert "replays" in sink.output()  # it followed the recorded batches
        assert _totals(ch, settings) == first_pass
    finally:
        worker.stop()
        sink.stop()


def test_sigkilled_sink_and_worker_lose_nothing_and_double_nothing(
    settings: Settings, ch: Client, tmp_path: Path
) -> None:
    # Small batches so that kills land between insert and commit often.
    settings = settings.model_copy(update={"sink_batch_rows": 200, "sink_batch_seconds": 0.2})
    worker = Service("worker", settings, tmp_path, STORE_EVERYTHING_ENV).start()
    sink = Service("sink", settings, tmp_path).start()
    rng = random.Random(11)
    total = 0
    try:
        for round_no in range(5):
            _publish(settings, 600, seed=100 + round_no)
            total += 600
            time.sleep(rng.uniform(0.5, 2.5))
            sink.kill()
            if round_no == 2:
                worker.kill()  # its uncommitted input is processed again: duplicates reach the sink
                worker = Service("worker", settings, tmp_path, STORE_EVERYTHING_ENV).start()
            sink = Service("sink", settings, tmp_path).start()
        def lag() -> str:
            worker_lag = asyncio.run(_group_offsets(settings, group=settings.app_id, topic=settings.topic_errors))
            return f"worker (committed, end) {worker_lag}; sink {asyncio.run(_group_offsets(settings))}\n" + (
                worker.output()[-2000:] + sink.output()[-3000:])

        counted = wait_for(lambda: _totals(ch, settings), lambda t: t[0] >= total, 180, f"{total} events",
                           diagnostics=lag)
        # the sink commits after each insert: caught up means every insert is in, duplicates included
        wait_for(lambda: asyncio.run(_group_offsets(settings)), lambda o: o[0] == o[1], 60, "sink caught up")
        db = settings.clickhouse_database
        assert _totals(ch, settings)[0] == total, counted
        distinct = ch.query(f"SELECT count(), uniqExact(event_id) FROM {db}.error_events FINAL").result_rows[0]
        assert distinct == (total, total)
    finally:
        worker.stop()
        sink.stop()
