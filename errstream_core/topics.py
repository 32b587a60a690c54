"""Topic creation shared by the worker, the sink and the tests.

Topics are created explicitly with the configured partition count: relying on
broker auto-creation gives the wrong partition count for faust's changelogs and
makes the first consumer wait for metadata.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from errstream_core.settings import Settings

log = logging.getLogger("errstream.topics")
T = TypeVar("T")

# A dead broker that metadata still names answers nothing until the quorum fences it (9 s by default);
# the admin client sends each question to a random known broker, so asking again reaches a live one.
DLQ_RETENTION_RETRY_SECONDS = 15.0
CLUSTER_QUESTION_RETRY_SECONDS = 30.0

# Latest value per key is all that matters: compaction keeps one record per fingerprint forever.
COMPACTED = {"cleanup.policy": "compact"}


@lru_cache(maxsize=65_536)
def key_hash(key: bytes) -> int:
    """``key_hash(key) % partitions`` is the partition the Java/aiokafka default partitioner picks.

    The processing stage and detection must agree on it (detection's table keys live on the
    partition of their fingerprint). aiokafka's murmur2 is pure Python, so costly per key, and
    the same fingerprints recur in event after event, hence the memo.
    """
    return murmur2(key) & 0x7FFFFFFF


def by_fingerprint_topic(settings: Settings) -> str:
    """Detection's input: bundles of signals, one per partition of the fingerprints they carry."""
    return f"{settings.app_id}-detect-by-fingerprint"


def by_service_topic(settings: Settings) -> str:
    """Detection's repartition of processed events by service (internal: prefixed by the app id)."""
    return f"{settings.app_id}-detect-by-service"


def by_trace_topic(settings: Settings) -> str:
    """Detection's repartition of processed events by trace id."""
    return f"{settings.app_id}-detect-by-trace"


def pipeline_topics(settings: Settings) -> list[str]:
    return [settings.topic_errors, settings.topic_dlq, settings.topic_processed, settings.topic_alerts,
            settings.topic_issue_status, settings.topic_issue_merges, settings.topic_grouping_rules, settings.topic_sessions,
            settings.topic_alert_rules,
            by_fingerprint_topic(settings), by_service_topic(settings),
            by_trace_topic(settings),
            settings.chains_topic]


def replication(settings: Settings, brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for topics created on a cluster of ``brokers``.

    "auto": three copies where three brokers exist (fewer brokers cannot hold more copies), and an
    acks=all write needs all but one of them, so one broker may be down without stopping producers.
    """
    want_rf, want_isr = settings.topic_replication_factor, settings.topic_min_insync_replicas
    rf = min(3, max(1, brokers)) if want_rf == "auto" else want_rf
    return rf, max(1, rf - 1) if want_isr == "auto" else want_isr


async def cluster_replication(settings: Settings, admin: AIOKafkaAdminClient | None = None) -> tuple[int, int]:
    """``replication`` for the cluster behind ``settings.kafka_bootstrap`` (counts its live brokers)."""
    if admin is not None:
        brokers = len((await admin.describe_cluster())["brokers"])
        if 1 < brokers < 3 and settings.topic_replication_factor == "auto":
            # "auto" sees only the brokers that answer now: a topic created while one is down keeps fewer copies
            logging.getLogger("errstream.topics").warning(
                "only %d brokers answer: topics created now get %d replicas; set ERRSTREAM_TOPIC_REPLICATION_FACTOR "
                "to insist on more", brokers, brokers)
        return replication(settings, brokers)
    own = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await own.start()
    try:
        # the admin client asks a random known broker, which may be one that died a moment ago
        return await _retrying(lambda: cluster_replication(settings, own), CLUSTER_QUESTION_RETRY_SECONDS)
    finally:
        await own.close()


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    configs = {
        settings.topic_issue_status: COMPACTED,
        settings.topic_issue_merges: COMPACTED,
        settings.topic_grouping_rules: COMPACTED,
        settings.topic_alert_rules: COMPACTED,
        # broker time on `errors`: grouping rules switch at a recorded point (stream_processors.grouping_rules_follower)
        settings.topic_errors: {"message.timestamp.type": "LogAppendTime"},
    }
    if settings.dlq_retention_hours > 0:
        configs[settings.topic_dlq] = dlq_configs(settings)
    return configs


def dlq_configs(settings: Settings) -> dict[str, str]:
    """The dead-letter topic keeps raw, unscrubbed payloads (for replay): only for a short while."""
    return {"retention.ms": str(int(settings.dlq_retention_hours * 3_600_000))}


async def _topic_overrides(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    """The configs set on the topic itself (not broker or static defaults)."""
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    overrides: dict[str, str] = {}
    for resource in response.resources:
        if resource[0]:
            raise RuntimeError(f"DescribeConfigs error {resource[0]}: {resource[1]}")
        for entry in resource[4]:
            name, value, read_only, source = entry[0], entry[1], entry[2], entry[3]
            # v0 reports is_default (bool); v1+ a config source, 1 = DYNAMIC_TOPIC_CONFIG
            set_on_topic = (source is False) if isinstance(source, bool) else source == 1
            if set_on_topic and not read_only and value is not None:
                overrides[name] = value
    return overrides


async def _apply_dlq_retention(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    """An existing dead-letter topic follows ERRSTREAM_DLQ_RETENTION_HOURS too (its other overrides are kept:
    Kafka's AlterConfigs replaces a topic's whole set)."""
    wanted = dlq_configs(settings)
    current = await _topic_overrides(admin, settings.topic_dlq)
    if all(current.get(k) == v for k, v in wanted.items()):
        return
    responses = await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, settings.topic_dlq, {**current, **wanted})])
    for response in responses:
        for error_code, error_message, *_ in response.resources:
            if error_code:
                raise RuntimeError(f"AlterConfigs error {error_code}: {error_message}")


async def ensure_topics(
    settings: Settings, names: list[str] | None = None, timeout: float = 60.0, configs: dict[str, str] | None = None
) -> None:
    """Create missing topics and wait until every partition of ``names`` has a leader.

    ``configs`` (e.g. ``cleanup.policy=compact``) apply to the topics created now. The whole call is bounded
    by ``timeout``: a broker that cannot be reached by then raises ``KafkaConnectionError`` (one that answers
    too slowly, ``KafkaTimeoutError``), so callers can say what is down instead of waiting forever. Waiting for
    leaders matters on a fresh broker: a producer sending to a partition whose leader is not elected yet gets
    ``NotLeaderForPartitionError`` and retries, noisily.
    """
    names = names or pipeline_topics(settings)
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs(), request_timeout_ms=max(1, int(timeout * 1000)))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_error: Exception | None = None
    while True:
        try:
            await asyncio.wait_for(admin.start(), max(0.1, deadline - loop.time()))
            break
        except Exception as exc:
            last_error = exc
            if loop.time() + 0.5 > deadline:
                await admin.close()
                raise KafkaConnectionError(
                    f"no broker answered at {settings.kafka_bootstrap} within {timeout:g} s") from last_error
            await asyncio.sleep(0.5)
    try:
        async with asyncio.timeout(max(0.1, deadline - loop.time())):
            while True:
                try:
                    await _create_and_wait(admin, settings, names, configs, timeout)
                    return
                except KafkaError as exc:
                    # A broker of a cluster is down: metadata still names it (as controller or leader) until
                    # the quorum notices, and requests sent to it fail with NodeNotReady. Ask again.
                    if not exc.retriable:
                        raise
                    last_error = exc
                    log.debug("ensuring topics: %s; retrying", exc)
                    await asyncio.sleep(0.5)
    except TimeoutError:
        reason = f" (last: {type(last_error).__name__})" if last_error is not None else ""
        raise KafkaTimeoutError(f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout:g} s"
                                f"{reason}") from None
    finally:
        await admin.close()


async def _create_and_wait(admin: AIOKafkaAdminClient, settings: Settings, names: list[str],
                           configs: dict[str, str] | None, timeout: float) -> None:
    """One attempt: create the missing topics, adjust the DLQ's retention, wait for every partition's leader."""
    existing = set(await admin.list_topics())
    missing = [n for n in names if n not in existing]
    if missing:
        rf, isr = await cluster_replication(settings, admin)
        durability = {"min.insync.replicas": str(isr)} if isr > 1 else {}
        try:
            await admin.create_topics(
                [
                    NewTopic(n, num_partitions=settings.topic_partitions, replication_factor=rf,
                             topic_configs={**(configs or topic_configs(settings).get(n, {})), **durability})
                    for n in missing
                ]
            )
        except TopicAlreadyExistsError:
            pass
    if settings.topic_dlq in names and settings.topic_dlq in existing and settings.dlq_retention_hours > 0:
        try:
            await _retrying(lambda: _apply_dlq_retention(admin, settings), DLQ_RETENTION_RETRY_SECONDS)
        except Exception as exc:  # e.g. no DescribeConfigs/AlterConfigs right: the pipeline runs anyway
            log.warning("could not set retention.ms on %s (%s: %s); set it on the topic yourself "
                        "(ERRSTREAM_DLQ_RETENTION_HOURS=%g)", settings.topic_dlq, type(exc).__name__, exc,
                        settings.dlq_retention_hours)
    partitions = await _wait_for_leaders(admin, names)
    await _wait_until_served(settings, partitions, timeout)


async def _retrying(attempt: Callable[[], Awaitable[T]], seconds: float) -> T:
    """``attempt()`` again after retriable Kafka errors (a dead broker, a moved leader) for up to ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            return await attempt()
        except KafkaError as exc:
            if not exc.retriable or loop.time() + 0.5 > deadline:
                raise
            await asyncio.sleep(0.5)


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> list[TopicPartition]:
    """Poll metadata until every partition of ``names`` has a leader (bounded by the caller's timeout)."""
    delay = 0.05
    while True:
        topics = await admin.describe_topics(names)
        waiting = [t["topic"] for t in topics if not _has_leaders(t)]
        if not waiting:
            return [TopicPartition(t["topic"], p["partition"]) for t in topics for p in t["partitions"]]
        log.debug("waiting for partition leaders of %s", waiting)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def _wait_until_served(settings: Settings, partitions: list[TopicPartition], timeout: float) -> None:
    """Ask every partition's leader for its end offset: it answers once it actually serves the partition.

    Metadata names a leader a moment before that broker has loaded the partition (KRaft publishes the
    election first); a producer sending in that moment gets ``NotLeaderForPartitionError``. ListOffsets
    retries that state quietly (aiokafka logs it at DEBUG) until the leader answers.
    """
    if not partitions:
        return
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False,
                                request_timeout_ms=max(1, int(timeout * 1000)))
    await consumer.start()
    try:
        await know_topics(consumer, {tp.topic for tp in partitions})
        await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def know_topics(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> None:
    """Fetch the metadata of all ``topics`` in one request, before asking about their partitions.

    A consumer that subscribed to nothing learns topics one at a time: each topic it does not know yet
    costs an ``end_offsets`` call a metadata refresh and aiokafka's retry backoff (100 ms). Nine fresh
    topics took 1.3 s to look up that way, though the broker served them all; this makes it one round trip.
    aiokafka has no public call for it (``assign`` would also start fetching).
    """
    await consumer._client.set_topics(sorted(set(topics)))  # noqa: SLF001


def _has_leaders(topic: dict[str, Any]) -> bool:
    partitions = topic.get("partitions") or []
    return topic.get("error_code", 0) == 0 and bool(partitions) and all(
        p.get("error_code", 0) == 0 and p.get("leader", -1) >= 0 for p in partitions)
