"""Topic creation shared by the worker, the sink and the tests.

Topics are created explicitly with the configured partition count: relying on
broker auto-creation gives the wrong partition count for faust's changelogs and
makes the first consumer wait for metadata.
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from errstream_core.settings import Settings

# Latest value per key is all that matters: compaction keeps one record per fingerprint forever.
COMPACTED = {"cleanup.policy": "compact"}


@lru_cache(maxsize=65_536)
def key_hash(key: bytes) -> int:
    """``key_hash(key) % partitions`` is the partition the Java/aiokafka default partitioner picks.

    The processing stage and detection must agree on it (detection's table keys live on the
    partition of their fingerprint). aiokafka's murmur2 is pure Python (~10 µs a key) and the
    same fingerprints recur in event after event, hence the memo.
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
            settings.topic_issue_status, settings.topic_grouping_rules, by_fingerprint_topic(settings), by_service_topic(settings),
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
        return await cluster_replication(settings, own)
    finally:
        await own.close()


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    return {
        settings.topic_issue_status: COMPACTED,
        settings.topic_grouping_rules: COMPACTED,
        # broker time on `errors`: grouping rules switch at a recorded point (stream_processors.rules_follower)
        settings.topic_errors: {"message.timestamp.type": "LogAppendTime"},
    }


async def ensure_topics(
    settings: Settings, names: list[str] | None = None, timeout: float = 60.0, configs: dict[str, str] | None = None
) -> None:
    """Create missing topics; ``configs`` (e.g. ``cleanup.policy=compact``) apply to the ones created now."""
    names = names or pipeline_topics(settings)
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs(), request_timeout_ms=int(timeout * 1000))
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.start()
            break
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
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
    finally:
        await admin.close()
