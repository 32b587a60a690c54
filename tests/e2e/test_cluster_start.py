"""Workers started while a broker of the cluster is down, before the cluster has noticed.

Until the controller quorum fences a dead broker (``broker.session.timeout.ms``), metadata still
names it: as a partition's leader, and as the "controller" a client is told to send topic creation
to. A new worker declares its tables' changelog topics in that window. faust asked the first broker
it knew of, dead or not, and the worker exited at start-up with ``NodeNotReadyError``.

This module's cluster fences after 30 s, not 9, so that a worker started right after a kill always
starts inside the window. Opt-in like the other cluster tests:

    ERRSTREAM_TEST_CLUSTER=1 .venv/bin/python -m pytest tests/e2e/test_cluster_start.py
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiokafka
import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.kafka import LocalKafka
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from producers.publisher import ErrorPublisher
from stream_processors.app import create_app
from tests.support.alerts import query_rows
from tests.support.cluster import CLUSTER_MARKS, counted, fully_replicated, three_brokers, topic_names
from tests.support.detection import error
from tests.support.kafka import publish_until_acknowledged
from tests.support.services import STORE_EVERYTHING_ENV, Service, wait_for

pytestmark = CLUSTER_MARKS

FENCE_AFTER_MS = 30_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with three_brokers(tmp_path_factory.mktemp("kafka3"),
                       extra_config=(f"broker.session.timeout.ms={FENCE_AFTER_MS}",)) as kafka:
        yield kafka


@pytest.fixture(scope="module")
def kafka_bootstrap(cluster: LocalKafka) -> str:
    """Overrides the single broker of tests/conftest.py: `settings` and its topics live on the cluster."""
    return cluster.bootstrap


def test_the_workers_transport_declares_topics_while_metadata_names_a_dead_broker(
    cluster: LocalKafka, settings: Settings
) -> None:
    """The transport a worker uses for faust's own topics, with metadata fetched before node 1 died.

    faust's own declaration sends its metadata request to the first broker the client knows of; when
    that is the dead one, every declaration fails. The worker's transport must create each topic.
    """
    names = [f"{settings.app_id}-declared-{i}" for i in range(3)]

    async def declare() -> set[int]:
        app = create_app(settings, replication_factor=3)
        client = aiokafka.AIOKafkaClient(bootstrap_servers=cluster.bootstrap)
        await client.bootstrap()
        known = {b.nodeId for b in client.cluster.brokers()}
        transport: Any = app.producer.transport
        cluster.kill_node(1)
        try:
            for name in names:
                await transport._create_topic(app, client, name, 4, 3)
        finally:
            await client.close()
        return known

    try:
        known = asyncio.run(declare())
        existing = wait_for(lambda: topic_names(settings), lambda t: set(names) <= t, 60, "the declared topics")
    finally:
        cluster.start_node(1, timeout=180)
        wait_for(lambda: fully_replicated(settings), bool, 300, "broker 1 back in every ISR")
    assert known == {1, 2, 3}, "the client must have known the broker before it died"
    assert set(names) <= existing


def _publish(settings: Settings, events: int) -> set[uuid.UUID]:
    async def go() -> set[uuid.UUID]:
        sent: set[uuid.UUID] = set()
        async with ErrorPublisher(settings, ack_timeout=20.0) as pub:
            for start in range(0, events, 50):
                batch = [error("checkout", f"issue-{(start + k) % 3}", datetime.now(UTC)) for k in range(50)]
                await publish_until_acknowledged(pub, batch)
                sent.update(e.event_id for e in batch)
        return sent

    return asyncio.run(go())


def test_workers_started_while_a_broker_is_down_come_up_and_count_exactly(
    cluster: LocalKafka, settings: Settings, ch: Client, tmp_path: Path
) -> None:
    """Three workers of a fresh app start just after node 1 (first in every bootstrap list) is killed.

    Each declares several changelog topics while metadata names the dead broker, so without retries
    at least one worker asks it and exits. All must come up, and every event must be counted once.
    """
    db = settings.clickhouse_database
    cluster.kill_node(1)
    services = [Service("worker", settings, tmp_path, STORE_EVERYTHING_ENV).start() for _ in range(3)]
    services.append(Service("sink", settings, tmp_path).start())

    def logs() -> str:
        return "\n".join(f"--- {s.command}\n{s.output()[-3000:]}" for s in services)

    try:
        asyncio.run(ensure_topics(settings, timeout=120))  # as the workers do; auto-creation would skip configs
        sent = _publish(settings, 600)
        wait_for(lambda: counted(ch, db), lambda n: n >= len(sent) or not all(s.running() for s in services),
                 300, f"all {len(sent)} events counted", logs)
        exited = [s.command for s in services if not s.running()]
        assert not exited, f"{exited} ended on their own\n{logs()}"
        total = counted(ch, db)
        stored = query_rows(ch, f"SELECT count(), uniqExact(event_id) FROM {db}.error_events")[0]
    finally:
        for svc in services:
            svc.stop()
        cluster.start_node(1, timeout=180)
        wait_for(lambda: fully_replicated(settings), bool, 300, "broker 1 back in every ISR")
    assert total == len(sent), f"error_counts_1m says {total} events, {len(sent)} were published"
    assert tuple(stored) == (len(sent), len(sent)), "one error_events row per event"
