"""A fresh broker: topics are usable when ensure_topics returns, and sink/notify start without ERROR lines.

On a broker that was just formatted, `__consumer_offsets` and every new partition need a moment to elect
leaders: aiokafka logged `GroupCoordinatorNotAvailableError` at ERROR on every fresh start of the sink and
notify, and producers right after topic creation retried on `NotLeaderForPartitionError`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from errstream.local.kafka import LocalKafka
from errstream.local.process import free_port_pair
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from sinks.clickhouse.migrate import migrate
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fresh_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("ERRSTREAM_KAFKA_BOOTSTRAP"):
        pytest.skip("needs a broker of its own (ERRSTREAM_KAFKA_BOOTSTRAP points at a shared one)")
    cache = Path(os.environ.get("ERRSTREAM_CACHE_DIR", Path.home() / ".cache" / "errstream"))
    kafka = LocalKafka(state_dir=tmp_path_factory.mktemp("fresh-kafka"), cache_dir=cache, port=free_port_pair(),
                       partitions=4)
    kafka.up()
    try:
        yield kafka.bootstrap
    finally:
        kafka.down()


def _settings(bootstrap: str, clickhouse_url: str) -> Settings:
    run = uuid.uuid4().hex[:10]
    return Settings(kafka_bootstrap=bootstrap, clickhouse_url=clickhouse_url, clickhouse_database=f"errstream_f{run}",
                    app_id=f"f{run}", sink_group=f"f{run}-sink", topic_partitions=4)


async def _leaderless(settings: Settings, topics: list[str]) -> list[tuple[str, int]]:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        return [(t["topic"], p["partition"]) for t in await admin.describe_topics(topics)
                for p in t["partitions"] if p["leader"] < 0] + [
            (t["topic"], -1) for t in await admin.describe_topics(topics) if not t["partitions"]]
    finally:
        await admin.close()


async def _groups(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        return {g[0] for g in await admin.list_consumer_groups()}
    except KafkaError as exc:  # e.g. GroupLoadInProgressError while the coordinator loads: ask again
        if not exc.retriable:
            raise
        return set()
    finally:
        await admin.close()


def test_topics_take_records_without_retries_when_ensure_topics_returns(
    fresh_kafka: str, clickhouse_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    from errstream_core import kafka_logging

    for name in kafka_logging.AIOKAFKA_LOGGERS:  # see aiokafka's own lines, undemoted
        logging.getLogger(name).removeFilter(kafka_logging._FILTER)
    settings = _settings(fresh_kafka, clickhouse_url)
    topics = [f"fresh-{uuid.uuid4().hex[:8]}-{i}" for i in range(6)]

    async def create_then_produce() -> list[tuple[str, int]]:
        await ensure_topics(settings, topics, timeout=60)
        leaderless = await _leaderless(settings, topics)
        producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all")
        await producer.start()
        try:
            await asyncio.gather(*(producer.send_and_wait(t, b"x", partition=p) for t in topics for p in range(4)))
        finally:
            await producer.stop()
        return leaderless

    with caplog.at_level(logging.WARNING, logger="aiokafka"):
        assert asyncio.run(create_then_produce()) == []
    retries = [r.getMessage() for r in caplog.records if r.name.startswith("aiokafka")]
    assert retries == []  # e.g. "Got error produce response … NotLeaderForPartitionError, retrying"


def test_sink_and_notify_start_on_a_fresh_broker_without_error_lines(
    fresh_kafka: str, clickhouse_url: str, tmp_path: Path,
) -> None:
    settings = _settings(fresh_kafka, clickhouse_url)
    migrate(settings)
    services = [Service("sink", settings, tmp_path).start(), Service("notify", settings, tmp_path).start()]
    groups = {settings.sink_group, f"{settings.sink_group}-alerts", f"{settings.sink_group}-status"}
    try:
        # In a group means a coordinator was found: past the state that used to be logged at ERROR.
        wait_for(lambda: asyncio.run(_groups(settings)), lambda got: groups <= got, 120,
                 "the sink and notify consumer groups", diagnostics=lambda: [s.output() for s in services])
    finally:
        for svc in services:
            svc.stop()
    for svc in services:
        out = svc.output()
        assert " ERROR " not in out and "Traceback" not in out, out
        assert "CoordinatorNotAvailable" not in out and "NotLeaderForPartition" not in out, out


def test_ensure_topics_looks_up_many_new_topics_in_one_metadata_round(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every test, role start and CLI command ensures its topics: nine new ones took nine metadata refreshes,
    each after aiokafka's 100 ms retry backoff (1.3 s), though the broker served them all at once."""
    rounds: list[set[str]] = []  # the topics each metadata request asked about
    original = AIOKafkaClient._metadata_update

    async def counted(self: AIOKafkaClient, cluster_metadata: object, topics: object) -> object:
        rounds.append(set(topics or ()))  # type: ignore[call-overload]
        return await original(self, cluster_metadata, topics)

    monkeypatch.setattr(AIOKafkaClient, "_metadata_update", counted)
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_partitions=4)
    topics = [f"many-{uuid.uuid4().hex[:8]}-{i}" for i in range(9)]
    asyncio.run(ensure_topics(settings, topics, timeout=60))
    # the partitions' check asks about all nine in its first round (its bootstrap asks about none); a
    # topic learnt at a time needed a ninth round. Later rounds (a partition not served yet) may follow.
    first_with_topics = next(asked for asked in rounds if asked)
    assert set(topics) <= first_with_topics, rounds
