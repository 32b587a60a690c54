"""One record never stops a partition: the worker and the sink dead-letter it with its stage, reason and source."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from producers.synthetic import synthetic_event
from schemas.fast import encode
from stream_processors.event_processor import EventProcessor
from tests.support.kafka import read_topic
from tests.support.services import STORE_EVERYTHING_ENV, Service, wait_for

pytestmark = pytest.mark.e2e


def _counted(ch: Client, settings: Settings) -> int:
    try:
        return int(ch.query(f"SELECT sum(events) FROM {settings.clickhouse_database}.error_counts_1m")
                   .result_rows[0][0] or 0)
    except Exception:  # noqa: BLE001 - the schema appears when the sink starts
        return 0


def _produce(settings: Settings, topic: str, records: Sequence[tuple[bytes, Sequence[tuple[str, bytes]]]]) -> None:
    async def go() -> None:
        producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all")
        await producer.start()
        try:
            for value, headers in records:
                await producer.send_and_wait(topic, value, partition=0, headers=list(headers))
        finally:
            await producer.stop()

    asyncio.run(go())


def _processed(event_json: dict, processor: EventProcessor) -> tuple[bytes, list[tuple[str, bytes]]]:
    outcome = processor.process(orjson.dumps(event_json), partition=0, offset=0, received_at=datetime.now(UTC))
    assert outcome.processed is not None, outcome.dead_letter
    p = outcome.processed
    return encode(p), [("event_id", p.event.event_id.hex.encode())]


def test_the_sink_dead_letters_rows_it_cannot_store_and_stores_the_rest(
    settings: Settings, ch: Client, tmp_path: Path,
) -> None:
    rng = random.Random(5)
    processor = EventProcessor(source_topic=settings.topic_errors)
    now = datetime.now(UTC) - timedelta(minutes=5)
    good = [_processed(orjson.loads(synthetic_event(rng, "billing", timestamp=now).model_dump_json()), processor)
            for _ in range(40)]
    # Processed records the worker (before its schema bounds) let through: the sink's own client fails
    # to serialise year 1 into DateTime (struct.error); a 400-digit integer cannot even be encoded.
    year_one = orjson.loads(good[0][0])
    year_one["event"]["event_id"] = "00000000-0000-4000-8000-000000000001"
    year_one["event"]["timestamp"] = "0001-01-01T00:00:00+00:00"
    huge = orjson.loads(good[1][0])
    huge["event"]["event_id"] = "00000000-0000-4000-8000-000000000002"
    bad_tag = orjson.loads(good[2][0])
    bad_tag["event"]["event_id"] = "00000000-0000-4000-8000-000000000003"
    bad_tag["event"]["tags"] = {"attempt": {"nested": [1, 2]}}  # the client cannot write it into Map(String, String)
    poison = [
        (orjson.dumps(year_one), [("event_id", b"00000000000040008000000000000001")]),
        (orjson.dumps(huge).replace(b'"event_id"', b'"context":{"n":' + b"9" * 400 + b'},"event_id"', 1),
         [("event_id", b"00000000000040008000000000000002")]),
        (b"{not json", []),
        (orjson.dumps(bad_tag), [("event_id", b"00000000000040008000000000000003")]),
    ]
    _produce(settings, settings.topic_processed, good[:20] + poison + good[20:])
    sink = Service("sink", settings, tmp_path).start()
    try:
        dead = read_topic(settings, settings.topic_dlq, expect=4, timeout=90)
        wait_for(lambda: _counted(ch, settings), lambda n: n >= 40, 90, "the 40 valid records counted",
                 diagnostics=lambda: sink.output()[-3000:])
        assert sink.proc is not None and sink.proc.poll() is None  # still running
    finally:
        sink.stop()
    assert _counted(ch, settings) == 40  # the bad tag's record is refused whole: its row cannot be stored
    stored = ch.query(f"SELECT count() FROM {settings.clickhouse_database}.error_events").result_rows[0][0]
    assert stored == 40
    assert len(dead) == 4
    by_offset = {d["source_offset"]: d for d in dead}
    assert set(by_offset) == {20, 21, 22, 23}
    # a tag the Map(String, String) column cannot hold: found when its row is built (sinks/clickhouse/rows.py)
    assert by_offset[23]["stage"] == "sink-rows" and by_offset[23]["reason"] == "unstorable"
    assert "tag" in by_offset[23]["detail"]
    assert all(d["source_topic"] == settings.topic_processed and d["source_partition"] == 0 for d in dead)
    assert by_offset[20]["stage"] in ("sink-rows", "sink-insert") and by_offset[20]["reason"] == "unstorable"
    assert "outside 1970-01-01..2106-02-07" in by_offset[20]["detail"]
    assert by_offset[21]["stage"] in ("sink-decode", "sink-rows", "sink-insert")
    assert by_offset[22]["stage"] == "sink-decode"
    assert "ClickHouse write failed" not in sink.output()


def test_a_record_that_makes_the_worker_raise_is_dead_lettered_and_the_partition_moves_on(
    settings: Settings, ch: Client, tmp_path: Path,
) -> None:
    rng = random.Random(6)
    now = datetime.now(UTC) - timedelta(minutes=5)
    # 5,000 levels: msgspec and the stdlib parser recurse, so this raised RecursionError, not a decode error
    nested = orjson.loads(synthetic_event(rng, "billing", timestamp=now).model_dump_json())
    payload = orjson.dumps({**nested, "context": {}}).replace(b'"context":{}', b'"context":' + b'{"a":' * 5000
                                                                + b"1" + b"}" * 5000, 1)
    events = [synthetic_event(rng, "billing", timestamp=now).model_dump_json().encode() for _ in range(20)]
    _produce(settings, settings.topic_errors, [(e, []) for e in events[:10]] + [(payload, [])]
             + [(e, []) for e in events[10:]])
    worker = Service("worker", settings, tmp_path, STORE_EVERYTHING_ENV).start()
    sink = Service("sink", settings, tmp_path).start()
    try:
        dead = read_topic(settings, settings.topic_dlq, expect=1, timeout=120)
        wait_for(lambda: _counted(ch, settings), lambda n: n >= 20, 120, "the 20 valid events counted",
                 diagnostics=lambda: worker.output()[-3000:])
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        worker.stop()
        sink.stop()
    assert _counted(ch, settings) == 20
    assert len(dead) == 1
    assert dead[0]["source_offset"] == 10 and dead[0]["source_topic"] == settings.topic_errors
    assert dead[0]["stage"] in ("process", "validate") and dead[0]["reason"] in ("processing_error", "invalid_event")
