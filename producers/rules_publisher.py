"""Publishing server-side grouping rules (``errstream rules apply``) to their compacted topic.

The record is keyed by the rules version (a digest of the text), so compaction keeps every version ever
published: a replay of old events finds the version that was in force for them.
"""

from __future__ import annotations

import getpass
import os
import time
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics


def _actor() -> str:
    try:
        return os.environ.get("ERRSTREAM_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def publish_rules(settings: Settings, text: str, version: str, delay_seconds: float | None = None) -> int:
    """Publish ``text`` as ``version``; returns the time (ms since the epoch) from which it applies."""
    delay = settings.grouping_rules_delay_seconds if delay_seconds is None else delay_seconds
    effective_at_ms = int((time.time() + max(delay, settings.grouping_rules_delay_seconds)) * 1000)
    await ensure_topics(settings, [settings.topic_grouping_rules])
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        body = {"version": version, "text": text, "effective_at_ms": effective_at_ms,
                "published_at": datetime.now(UTC).isoformat(), "published_by": _actor()}
        await producer.send_and_wait(settings.topic_grouping_rules, orjson.dumps(body), key=version.encode())
    finally:
        await producer.stop()
    return effective_at_ms


async def publish_alert_rules(settings: Settings, text: str, version: str) -> None:
    """The alert rules in force: one key on a compacted topic, so the latest file wins everywhere."""
    await ensure_topics(settings, [settings.topic_alert_rules])
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        body = {"version": version, "text": text, "published_at": datetime.now(UTC).isoformat(),
                "published_by": _actor()}
        await producer.send_and_wait(settings.topic_alert_rules, orjson.dumps(body), key=b"alert-rules")
    finally:
        await producer.stop()
