"""The broker work each event causes stays within its budget: counted, not timed, so any machine checks it.

The pipeline's cost on the broker follows the records and requests it sends per event: every topic an
event crosses is a produce, a fetch and a commit more, and the broker spent 13–15 µs per event on a raw
publish but 89–132 µs per event in the whole pipeline. A change that adds a topic crossing, a record per
event or a commit per batch fails here the day it lands, on any machine. The budgets and why they are
what they are: docs/performance.md, "Broker work per event".

The real worker and sink run with their metrics endpoints on; the test publishes realistic events in a
few large batches (as a backlog arrives), waits until both have committed everything, and reads:
- records produced on every topic of the pipeline (end offsets; exact);
- produce, fetch and offset-commit requests the two processes sent (``errstream_kafka_requests_total``);
- bytes the brokers hold for those records (DescribeLogDirs): what compression and batching leave of them.
Idle requests (heartbeats, empty fetches) accrue with wall time; the budgets on requests leave room for
them on a slow machine, the budget on records leaves none.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from clickhouse_connect.driver.client import Client

from errstream.local.process import free_port
from errstream_core.settings import Settings
from producers.synthetic import synthetic_stream
from tests.support.detection import publish, worker_lag
from tests.support.kafka import group_lag
from tests.support.log_dirs import topic_bytes
from tests.support.services import STORE_EVERYTHING_ENV, Service, wait_for

pytestmark = pytest.mark.e2e

EVENTS = 4_000
# Per event, across every topic the pipeline writes (processed, detection's three, changelogs, DLQ, chains,
# alerts). Measured 1.066 (2026-12-07): the processed record, plus detection's bundles and state, which
# grow with issues and partitions, not with events. A second record per event would be 2.0.
RECORDS_PER_EVENT = 1.10
# Per 1,000 events, worker and sink together. Measured 11 produce, 19 fetch, 3 commit requests (2026-12-07,
# 2-core machine under load; 74, 36 and 4 with aiokafka's 16 KB batches). Produce requests grow with events
# only through batching: a produce per record batch would be 1,000+. Fetches and commits also accrue with
# wall time (long polls, periodic commits), hence the room for a slower machine.
PRODUCE_PER_1000 = 30.0
FETCHES_PER_1000 = 100.0
COMMITS_PER_1000 = 20.0
# Bytes on the broker per event, every topic of the pipeline but ``errors`` (whose size the publisher decides).
# Measured 320 (2026-12-07): zstd record batches of a poll's records. aiokafka's lz4 (level 9) in batches of
# 16 KB held 510 for the same events.
BYTES_PER_EVENT = 400
_SAMPLE = re.compile(r'^errstream_kafka_requests_total\{api="([A-Za-z]+)"\} ([0-9.e+]+)$', re.MULTILINE)
_INSERTS = re.compile(r'^errstream_clickhouse_inserts_total\{table="([a-z_0-9]+)"\} ([0-9.e+]+)$', re.MULTILINE)


def _requests(port: int) -> dict[str, float]:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:  # not listening yet
        return {}
    return {api: float(n) for api, n in _SAMPLE.findall(text)}


def _publish_and_drain(settings: Settings, ch: Client, seed: int, logs: Callable[[], str]) -> None:
    """``EVENTS`` realistic events in four batches (as a backlog arrives), until stored and all committed."""
    events = list(synthetic_stream(EVENTS, seed=seed))
    for i in range(0, EVENTS, 1_000):
        publish(settings, events[i:i + 1_000])
    db = settings.clickhouse_database
    wait_for(lambda: ch.query(f"SELECT count() FROM {db}.error_events").result_rows[0][0], lambda n: n >= EVENTS,
             180, f"{EVENTS} events stored", diagnostics=logs)
    wait_for(lambda: worker_lag(settings) + group_lag(settings, settings.sink_group, [settings.topic_processed]),
             lambda n: n == 0, 60, "worker and sink to commit everything", diagnostics=logs)


def _wait_polling(logs: Callable[[], str], *ports: int) -> None:
    """Until each role polls Kafka (started, schema migrated)."""
    for port in ports:
        wait_for(partial(_fetches, port), lambda n: n > 0, 90, "a role polling Kafka", diagnostics=logs)


def _fetches(port: int) -> float:
    return _requests(port).get("Fetch", 0)


def _inserts(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {table: float(n) for table, n in _INSERTS.findall(text)}


def _topic_records(settings: Settings) -> dict[str, int]:
    """End offsets of every topic of this test's pipeline (its topics and app id share a prefix)."""
    prefix = settings.topic_errors.split(".")[0]

    async def go() -> dict[str, int]:
        consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - no public "refresh" in aiokafka
            topics = [t for t in await consumer.topics() if t.startswith(prefix)]
            parts = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
            ends = await consumer.end_offsets(parts) if parts else {}
        finally:
            await consumer.stop()
        out: dict[str, int] = {}
        for tp, end in ends.items():
            out[tp.topic] = out.get(tp.topic, 0) + end
        return out

    return asyncio.run(go())


@pytest.fixture
def measured(settings: Settings, tmp_path: Path) -> Iterator[tuple[Service, int, Service, int]]:
    worker_port, sink_port = free_port(), free_port()
    worker = Service("worker", settings, tmp_path,
                     extra_env={**STORE_EVERYTHING_ENV, "ERRSTREAM_METRICS_PORT": str(worker_port)}).start()
    sink = Service("sink", settings, tmp_path, extra_env={"ERRSTREAM_METRICS_PORT": str(sink_port)}).start()
    try:
        yield worker, worker_port, sink, sink_port
    finally:
        worker.stop()
        sink.stop()


def test_records_and_requests_per_event_stay_within_budget(
    settings: Settings, ch: Client, measured: tuple[Service, int, Service, int]
) -> None:
    worker, worker_port, sink, sink_port = measured
    logs = lambda: worker.output()[-2000:] + sink.output()[-2000:]  # noqa: E731
    _wait_polling(logs, worker_port, sink_port)
    before = {"worker": _requests(worker_port), "sink": _requests(sink_port)}
    records_before = _topic_records(settings)
    bytes_before = _pipeline_bytes(settings)

    _publish_and_drain(settings, ch, 29, logs)

    after = {"worker": _requests(worker_port), "sink": _requests(sink_port)}
    records_after = _topic_records(settings)
    produced = {t: records_after.get(t, 0) - records_before.get(t, 0) for t in records_after
                if t != settings.topic_errors and records_after.get(t, 0) != records_before.get(t, 0)}
    per_api = {api: sum(after[role].get(api, 0) - before[role].get(api, 0) for role in after)
               for api in ("Produce", "Fetch", "OffsetCommit")}
    stored = {t: n - bytes_before.get(t, 0) for t, n in _pipeline_bytes(settings).items()}
    bytes_per_event = sum(stored.values()) / EVENTS
    per_event = sum(produced.values()) / EVENTS
    per_1000 = {api: n * 1000 / EVENTS for api, n in per_api.items()}
    print(f"records per event {per_event:.3f} by topic {produced}; bytes per event {bytes_per_event:.0f} "
          f"by topic {stored}; requests per 1,000 events {per_1000}; "
          f"by role {{'worker': {_delta(before, after, 'worker')}, 'sink': {_delta(before, after, 'sink')}}}")

    assert produced.get(settings.topic_processed) == EVENTS  # each event crosses to the sink exactly once
    assert per_event <= RECORDS_PER_EVENT, produced
    assert per_1000["Produce"] <= PRODUCE_PER_1000, per_1000
    assert per_1000["OffsetCommit"] <= COMMITS_PER_1000, per_1000
    assert per_1000["Fetch"] <= FETCHES_PER_1000, per_1000
    assert bytes_per_event <= BYTES_PER_EVENT, stored


def test_the_sink_writes_each_flush_of_all_its_partitions_in_one_insert_per_table(
    settings: Settings, ch: Client, measured: tuple[Service, int, Service, int]
) -> None:
    """ClickHouse's cost of an insert is mostly fixed: one per table and flush, not per partition."""
    worker, worker_port, sink, sink_port = measured
    logs = lambda: worker.output()[-2000:] + sink.output()[-2000:]  # noqa: E731
    _wait_polling(logs, worker_port, sink_port)
    _publish_and_drain(settings, ch, 30, logs)
    db = settings.clickhouse_database
    partitions = ch.query(f"SELECT uniqExact(partition) FROM {db}.sink_batches").result_rows[0][0]
    inserts = _inserts(sink_port)
    print(f"inserts by table {inserts}; partitions written {partitions}")
    assert partitions > 1  # the events' fingerprints spread over several partitions
    flushes = inserts["sink_batches"]
    assert inserts["error_events"] == flushes  # every flush stored events (the test stores all of them)
    assert inserts["error_occurrences_in"] == flushes


def _pipeline_bytes(settings: Settings) -> dict[str, int]:
    """Bytes on disk of this test's topics, ``errors`` left out."""
    prefix = settings.topic_errors.split(".")[0]
    return {t: n for t, n in topic_bytes(settings, prefix).items() if t != settings.topic_errors}


def _delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], role: str) -> dict[str, int]:
    return {api: int(after[role][api] - before[role].get(api, 0)) for api in sorted(after[role])
            if after[role][api] != before[role].get(api, 0)}
