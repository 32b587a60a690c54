"""A three-broker KRaft cluster for the cluster tests, and what they ask it: who leads, is all in sync."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from clickhouse_connect.driver.client import Client

from errstream.local.kafka import LocalKafka
from errstream.local.process import free_ports
from errstream_core.settings import Settings
from errstream_core.topics import pipeline_topics
from tests.support.alerts import query_rows

T = TypeVar("T")

CLUSTER_MARKS = [
    pytest.mark.e2e,
    pytest.mark.cluster,
    pytest.mark.skipif(os.environ.get("ERRSTREAM_TEST_CLUSTER") != "1",
                       reason="three brokers are heavy: set ERRSTREAM_TEST_CLUSTER=1"),
    pytest.mark.timeout(1_800),  # minutes on 2 loaded cores; the suite's 600 s would cut it off
]


@contextmanager
def three_brokers(state_dir: Path, extra_config: tuple[str, ...] = ()) -> Iterator[LocalKafka]:
    """Three combined broker/controller nodes on loopback, four partitions per topic, up until the block ends."""
    cache = Path(os.environ.get("ERRSTREAM_CACHE_DIR", Path.home() / ".cache" / "errstream"))
    kafka = LocalKafka(state_dir=state_dir, cache_dir=cache, port=free_ports(6), partitions=4, brokers=3,
                       heap="384m", extra_config=extra_config)
    kafka.up(timeout=180)
    try:
        yield kafka
    finally:
        kafka.down()


def _ask(settings: Settings, question: Callable[[AIOKafkaAdminClient], Awaitable[T]], otherwise: T) -> T:
    """One admin question; ``otherwise`` when the broker it went to does not answer (ask again: poll)."""
    async def go() -> T:
        admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
        await admin.start()
        try:
            return await question(admin)
        finally:
            await admin.close()

    try:
        return asyncio.run(go())
    except KafkaError:
        return otherwise


def partitions(settings: Settings) -> list[dict[str, Any]]:
    """Every partition of the pipeline's topics and of ``__consumer_offsets``; empty while no broker answers."""
    async def question(admin: AIOKafkaAdminClient) -> list[dict[str, Any]]:
        names = [*pipeline_topics(settings), "__consumer_offsets"]
        return [p for t in await admin.describe_topics(names) for p in t["partitions"]]

    return _ask(settings, question, [])


def topic_names(settings: Settings) -> set[str]:
    """Every topic of the cluster; empty while no broker answers (the admin client asks a random one)."""
    async def question(admin: AIOKafkaAdminClient) -> set[str]:
        return set(await admin.list_topics())

    return _ask(settings, question, set())


def leader_of_most(settings: Settings) -> int:
    """The broker that leads most partitions: the one whose loss hurts most."""
    leaders = Counter(p["leader"] for p in partitions(settings) if p["leader"] >= 0)
    return leaders.most_common(1)[0][0]


def fully_replicated(settings: Settings) -> bool:
    parts = partitions(settings)
    return bool(parts) and all(len(p["isr"]) == 3 and p["leader"] >= 0 for p in parts)


def counted(ch: Client, db: str) -> int:
    """Events counted in ``error_counts_1m`` so far (0 while the table is not there yet)."""
    rows = query_rows(ch, f"SELECT sum(events) FROM {db}.error_counts_1m")
    return int(rows[0][0] or 0) if rows else 0
