"""Graceful SIGTERM, and quiet, cheap waiting while the broker or ClickHouse is down (real processes)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from clickhouse_connect.driver.client import Client

from errstream.local.clickhouse import LocalClickHouse
from errstream.local.kafka import LocalKafka
from errstream.local.process import cpu_seconds, free_port
from errstream.local.servers import kafka_port
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from producers.synthetic import synthetic_event
from sinks.clickhouse.client import connect
from tests.support.detection import publish, worker_lag
from tests.support.kafka import read_topic
from tests.support.services import STORE_EVERYTHING_ENV, Service, wait_for

pytestmark = pytest.mark.e2e

QUIET_WINDOW = 20.0  # seconds of outage measured
MAX_LINES = 25  # about one line per second at most
MAX_CPU = 0.15  # of one core


def _publish(settings: Settings, count: int, seed: int) -> None:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(minutes=20)
    events = [synthetic_event(rng, timestamp=start + timedelta(milliseconds=50 * i)) for i in range(count)]

    publish(settings, events)


def _totals(ch: Client, settings: Settings) -> tuple[int, int]:
    db = settings.clickhouse_database
    try:
        counted = ch.query(f"SELECT sum(events) FROM {db}.error_counts_1m").result_rows[0][0]
        stored = ch.query(f"SELECT count() FROM {db}.error_events FINAL").result_rows[0][0]
    except Exception:  # noqa: BLE001 - not there yet, or ClickHouse down
        return (0, 0)
    return int(counted or 0), int(stored or 0)


async def _lag(settings: Settings, group: str, topic: str) -> tuple[int, int]:
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        ends = await consumer.end_offsets(parts)
        committed = [await consumer.committed(tp) or 0 for tp in parts]
        return sum(committed), sum(ends.values())
    finally:
        await consumer.stop()


def _where(settings: Settings, total: int) -> str:
    """Where events are, when a count is off: processed topic, and each group's (committed, end)."""
    ids = {r["event"]["event_id"] for r in read_topic(settings, settings.topic_processed, 10**9, timeout=10)}
    worker = asyncio.run(_lag(settings, f"{settings.app_id}-process", settings.topic_errors))
    sink = asyncio.run(_lag(settings, settings.sink_group, settings.topic_processed))
    return f"distinct events on the processed topic {len(ids)} of {total}; worker {worker}; sink {sink}"


def _terminate(services: list[Service], limit: float = 10.0) -> dict[str, tuple[int | None, float]]:
    """SIGTERM all at once; each one's (exit code, seconds to exit)."""
    t0 = time.monotonic()
    for svc in services:
        assert svc.proc is not None
        os.killpg(svc.proc.pid, signal.SIGTERM)
    out = {}
    for svc in services:
        assert svc.proc is not None
        try:
            code: int | None = svc.proc.wait(max(0.1, limit + 5 - (time.monotonic() - t0)))
        except Exception:  # noqa: BLE001 - did not exit: reported as None
            code = None
            svc.kill()
        out[svc.command] = (code, time.monotonic() - t0)
    return out


def test_sigterm_stops_worker_sink_and_notify_within_10s_and_a_restart_counts_exactly(
    settings: Settings, ch: Client, tmp_path: Path,
) -> None:
    settings = settings.model_copy(update={"sink_batch_rows": 500, "sink_batch_seconds": 0.3})
    total = 12_000
    worker = Service("worker", settings, tmp_path, STORE_EVERYTHING_ENV).start()
    sink = Service("sink", settings, tmp_path).start()
    notify = Service("notify", settings, tmp_path).start()
    try:
        _publish(settings, total, seed=21)
        at_stop = wait_for(lambda: _totals(ch, settings), lambda t: t[0] >= 500, 120, "the stream to flow",
                           diagnostics=lambda: sink.output()[-3000:])
        exits = _terminate([worker, sink, notify])
        for name, (code, seconds) in exits.items():
            assert code == 0 and seconds < 10, (name, code, seconds, {
                "worker": worker, "sink": sink, "notify": notify}[name].output()[-3000:])
        worker = Service("worker", settings, tmp_path, STORE_EVERYTHING_ENV).start()
        sink = Service("sink", settings, tmp_path).start()
        wait_for(lambda: _totals(ch, settings), lambda t: t[0] >= total, 180, f"{total} events",
                 diagnostics=lambda: _where(settings, total) + "\n" + sink.output()[-3000:])
        time.sleep(2)
        assert _totals(ch, settings) == (total, total), at_stop
        db = settings.clickhouse_database
        assert ch.query(f"SELECT uniqExact(event_id) FROM {db}.error_events").result_rows[0][0] == total
    finally:
        for svc in (worker, sink, notify):
            svc.stop()


def _quiet_while(services: list[Service], window: float = QUIET_WINDOW) -> dict[str, tuple[int, float]]:
    """(log lines written, CPU share of one core) of each service over ``window`` seconds."""
    before = {s.command: (s.output().count("\n"), cpu_seconds(s.proc.pid)) for s in services if s.proc}
    time.sleep(window)
    return {s.command: (s.output().count("\n") - before[s.command][0],
                        (cpu_seconds(s.proc.pid) - before[s.command][1]) / window) for s in services if s.proc}


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test's own, so stopping it disturbs no other test."""
    cache = Path(os.environ.get("ERRSTREAM_CACHE_DIR", Path.home() / ".cache" / "errstream"))
    kafka = LocalKafka(state_dir=tmp_path / "kafka", cache_dir=cache, port=kafka_port(), partitions=4)
    kafka.up()
    try:
        yield kafka
    finally:
        kafka.down()


@pytest.fixture
def own_clickhouse(tmp_path: Path) -> Iterator[LocalClickHouse]:
    ch = LocalClickHouse(state_dir=tmp_path / "clickhouse", port=free_port())
    ch.up()
    try:
        yield ch
    finally:
        ch.down()


def _isolated(settings: Settings, **update: object) -> Settings:
    run = uuid.uuid4().hex[:8]
    return settings.model_copy(update={"clickhouse_database": f"errstream_o{run}", **update})


def test_with_the_broker_down_worker_and_sink_log_little_use_little_cpu_and_recover_exactly(
    settings: Settings, own_kafka: LocalKafka, tmp_path: Path,
) -> None:
    s = _isolated(settings, kafka_bootstrap=own_kafka.bootstrap, sink_batch_seconds=0.3)
    asyncio.run(ensure_topics(s))
    ch = connect(s)
    worker = Service("worker", s, tmp_path, STORE_EVERYTHING_ENV).start()
    sink = Service("sink", s, tmp_path).start()
    try:
        _publish(s, 300, seed=31)
        wait_for(lambda: _totals(ch, s), lambda t: t[0] >= 300, 150, "300 events before the outage",
                 diagnostics=lambda: worker.output()[-2000:] + sink.output()[-2000:])
        # detection too has handled them: what is measured is the outage, not a backlog on a loaded machine
        wait_for(lambda: worker_lag(s), lambda n: n == 0, 120, "the worker to commit everything before the outage",
                 diagnostics=lambda: worker.output()[-2000:])
        own_kafka.down()
        time.sleep(5)  # noticing it is part of the outage, not of the steady state measured
        quiet = _quiet_while([worker, sink])
        print(f"broker down for {QUIET_WINDOW:.0f} s: (log lines, CPU share) {quiet}")
        for name, (lines, cpu) in quiet.items():
            svc = worker if name == "worker" else sink
            assert lines <= MAX_LINES and cpu <= MAX_CPU, (name, lines, cpu, svc.output()[-4000:])
            assert svc.proc is not None and svc.proc.poll() is None
        own_kafka.up()
        _publish(s, 300, seed=32)
        wait_for(lambda: _totals(ch, s), lambda t: t[0] >= 600, 180, "600 events after the outage",
                 diagnostics=lambda: worker.output()[-3000:] + sink.output()[-3000:])
        time.sleep(2)
        assert _totals(ch, s) == (600, 600)
    finally:
        worker.stop()
        sink.stop()
        ch.command(f"DROP DATABASE IF EXISTS {s.clickhouse_database}")
        ch.close()


def test_sigterm_stops_the_worker_within_its_bound_while_the_broker_is_down(
    settings: Settings, own_kafka: LocalKafka, tmp_path: Path,
) -> None:
    """faust's own shutdown waits on a broker that is gone (still alive 30 s after SIGTERM): the bound holds."""
    s = _isolated(settings, kafka_bootstrap=own_kafka.bootstrap)
    asyncio.run(ensure_topics(s))
    worker = Service("worker", s, tmp_path, STORE_EVERYTHING_ENV).start()
    try:
        _publish(s, 100, seed=33)
        read_topic(s, s.topic_processed, expect=100, timeout=120)  # the worker is up and its group formed
        wait_for(lambda: worker_lag(s), lambda n: n == 0, 120, "the worker to commit what it read",
                 diagnostics=lambda: worker.output()[-2000:])
        own_kafka.down()
        wait_for(lambda: "Connect call failed" in worker.output(), bool, 60, "the worker to notice the broker is gone",
                 diagnostics=lambda: worker.output()[-2000:])
        code, seconds = _terminate([worker])["worker"]
        assert code == 0 and seconds <= s.shutdown_seconds + 4, (code, seconds, worker.output()[-3000:])
    finally:
        worker.stop()


def test_with_clickhouse_down_the_sink_logs_little_uses_little_cpu_and_recovers_exactly(
    settings: Settings, own_clickhouse: LocalClickHouse, tmp_path: Path,
) -> None:
    s = _isolated(settings, clickhouse_url=own_clickhouse.client_url, sink_batch_seconds=0.3)
    worker = Service("worker", s, tmp_path, STORE_EVERYTHING_ENV).start()
    sink = Service("sink", s, tmp_path).start()
    ch = connect(s)
    try:
        _publish(s, 300, seed=41)
        wait_for(lambda: _totals(ch, s), lambda t: t[0] >= 300, 150, "300 events before the outage",
                 diagnostics=lambda: sink.output()[-3000:])
        ch.close()
        own_clickhouse.down()
        _publish(s, 300, seed=42)  # the sink has work it cannot write
        time.sleep(5)
        (lines, cpu), = _quiet_while([sink]).values()
        print(f"ClickHouse down for {QUIET_WINDOW:.0f} s: sink log lines {lines}, CPU share {cpu:.3f}")
        assert lines <= MAX_LINES and cpu <= MAX_CPU, (lines, cpu, sink.output()[-4000:])
        assert sink.proc is not None and sink.proc.poll() is None
        assert "Traceback" not in sink.output()
        own_clickhouse.up()
        ch = connect(s)
        wait_for(lambda: _totals(ch, s), lambda t: t[0] >= 600, 180, "600 events after the outage",
                 diagnostics=lambda: sink.output()[-3000:])
        time.sleep(2)
        assert _totals(ch, s) == (600, 600)
        assert "recovered" in sink.output()
    finally:
        worker.stop()
        sink.stop()


def test_the_gateways_health_says_kafka_is_down_during_an_outage_and_up_after(
    settings: Settings, own_kafka: LocalKafka,
) -> None:
    """Before: /healthz said ``kafka: true`` through a broker outage while every event got 503."""
    import httpx

    from errstream_core.settings import GatewayProject
    from tests.support.gateway import running_gateway

    s = settings.model_copy(update={"kafka_bootstrap": own_kafka.bootstrap, "gateway_publish_timeout": 3.0,
                                    "gateway_projects": {"7": GatewayProject(public_key="key7", service="web")}})
    asyncio.run(ensure_topics(s))
    with running_gateway(s) as url, httpx.Client(base_url=url, timeout=20) as http:
        def post() -> int:
            return http.post("/api/v1/events", json={"message": "m"}, headers={"X-Errstream-Key": "key7"}).status_code

        assert http.get("/healthz").json()["kafka"] is True and post() == 200
        own_kafka.down()
        wait_for(lambda: http.get("/healthz").json()["kafka"], lambda up: up is False, 30, "healthz to say kafka: false")
        assert post() == 503
        own_kafka.up()
        wait_for(lambda: http.get("/healthz").json()["kafka"], lambda up: up is True, 120, "healthz to say kafka: true")
        wait_for(post, lambda status: status == 200, 120, "events accepted again")
