"""Publishing the two kinds of rules file, each to its compacted topic.

* **Grouping rules** (``errstream grouping rules apply``, also ``errstream rules apply``): how the worker
  groups events. Keyed by the rules version (a digest of the text), so compaction keeps every version
  ever published: a replay of old events finds the version that was in force for them.
* **Alert rules** (``errstream alerts rules apply``): what ``errstream notify`` evaluates and where it
  routes alerts. One key, so the latest file wins everywhere.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics


def _actor() -> str:
    try:
        return os.environ.get("ERRSTREAM_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def publish_grouping_rules(settings: Settings, text: str, version: str, delay_seconds: float | None = None,
                        timeout: float = 10.0) -> int:
    """Publish ``text`` as ``version``; returns the time (ms since the epoch) from which it applies.

    ``timeout`` bounds the whole wait for the broker (``errstream --timeout N rules apply``): with the broker
    down the command says so after N seconds instead of waiting a minute in silence.
    """
    delay = settings.grouping_rules_delay_seconds if delay_seconds is None else delay_seconds
    effective_at_ms = int((time.time() + max(delay, settings.grouping_rules_delay_seconds)) * 1000)
    body = {"version": version, "text": text, "effective_at_ms": effective_at_ms,
            "published_at": datetime.now(UTC).isoformat(), "published_by": _actor()}
    await _publish(settings, settings.topic_grouping_rules, orjson.dumps(body), version.encode(), timeout)
    return effective_at_ms


async def publish_alert_rules(settings: Settings, text: str, version: str, timeout: float = 10.0) -> None:
    """The alert rules in force: one key on a compacted topic, so the latest file wins everywhere."""
    body = {"version": version, "text": text, "published_at": datetime.now(UTC).isoformat(),
            "published_by": _actor()}
    await _publish(settings, settings.topic_alert_rules, orjson.dumps(body), b"alert-rules", timeout)


async def _publish(settings: Settings, topic: str, value: bytes, key: bytes, timeout: float) -> None:
    """One acknowledged record, the whole of it (topic, connection, ack) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    await ensure_topics(settings, [topic], timeout=timeout)
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all", enable_idempotence=True,
                                request_timeout_ms=max(1_000, int(timeout * 1000)))
    try:
        left = max(0.5, deadline - time.monotonic())
        try:
            await asyncio.wait_for(producer.start(), left)
            await asyncio.wait_for(producer.send_and_wait(topic, value, key=key),
                                   max(0.5, deadline - time.monotonic()))
        except TimeoutError:
            raise KafkaTimeoutError(f"the broker did not acknowledge the record within {timeout:g} s") from None
    finally:
        await asyncio.wait_for(producer.stop(), 5)
