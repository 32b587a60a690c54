"""Which Kafka and ClickHouse the tests and the benchmarks use.

Order, per the project's rule: an explicit URL from the environment, then
testcontainers when a Docker engine answers, else the local launchers (a real
Kafka broker from Maven jars and the embedded ClickHouse endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from errstream.local.clickhouse import LocalClickHouse
from errstream.local.kafka import LocalKafka
from errstream.local.process import free_port, free_port_pair
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def kafka_port() -> int:
    """A free port whose next port is free too: the local broker's controller listens there."""
    return free_port_pair()


@contextlib.contextmanager
def kafka_server(state_dir: Path) -> Iterator[str]:
    if url := os.environ.get("ERRSTREAM_KAFKA_BOOTSTRAP"):
        yield url
        return
    if docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(os.environ.get("ERRSTREAM_TEST_KAFKA_IMAGE", "confluentinc/cp-kafka:7.7.1")).with_kraft() as kc:
            yield kc.get_bootstrap_server()
        return
    cache = Path(os.environ.get("ERRSTREAM_CACHE_DIR", Path.home() / ".cache" / "errstream"))
    kafka = LocalKafka(state_dir=state_dir, cache_dir=cache, port=free_port_pair(), partitions=4)
    kafka.up()
    try:
        yield kafka.bootstrap
    finally:
        kafka.down()


@contextlib.contextmanager
def clickhouse_server(state_dir: Path) -> Iterator[str]:
    if url := os.environ.get("ERRSTREAM_CLICKHOUSE_URL"):
        yield url
        return
    if docker_available():
        from testcontainers.clickhouse import ClickHouseContainer

        image = os.environ.get("ERRSTREAM_TEST_CLICKHOUSE_IMAGE", "clickhouse/clickhouse-server:25.8")
        with ClickHouseContainer(image).with_exposed_ports(8123) as ch:
            host, port = ch.get_container_host_ip(), ch.get_exposed_port(8123)
            yield f"http://{ch.username}:{ch.password}@{host}:{port}"
        return
    ch_local = LocalClickHouse(state_dir=state_dir, port=free_port())
    ch_local.up()
    try:
        yield ch_local.client_url  # with the read-write login `up` created
    finally:
        ch_local.down()


def isolated_settings(kafka_bootstrap: str, clickhouse_url: str) -> Settings:
    """Settings with their own topics (created), consumer groups and database on the shared servers."""
    run = uuid.uuid4().hex[:10]
    s = Settings(
        kafka_bootstrap=kafka_bootstrap,
        clickhouse_url=clickhouse_url,
        clickhouse_database=f"errstream_t{run}",
        topic_errors=f"t{run}.errors",
        topic_dlq=f"t{run}.errors.dlq",
        topic_alerts=f"t{run}.alerts",
        topic_processed=f"t{run}.processed",
        topic_issue_status=f"t{run}.issue-status",
        topic_issue_merges=f"t{run}.issue-merges",
        topic_grouping_rules=f"t{run}.grouping-rules",
        topic_sessions=f"t{run}.sessions",
        topic_alert_rules=f"t{run}.alert-rules",
        app_id=f"t{run}-errstream",
        sink_group=f"t{run}-sink",
        sink_batch_seconds=0.5,
    )
    asyncio.run(ensure_topics(s))
    return s
