"""Periodic tasks of ``errstream notify`` that publish what they derive from ClickHouse: alerts (rules,
escalation) and issue-status changes (auto-resolve).

Each round asks its task for records and publishes them to its topic (acks=all, idempotent); a
round that fails (ClickHouse or Kafka away) is logged once until a round succeeds again, and the next
round tries again. The records are deterministic, so a repeat after a restart is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pydantic import BaseModel

from errstream_core.consumer import start_producer
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from schemas.alerts import AlertEvent

R = TypeVar("R", bound=BaseModel)


async def publish_periodically(settings: Settings, stop: asyncio.Event, name: str, interval: float, topic: str,
                               round_: Callable[[], Awaitable[Sequence[R]]], key: Callable[[R], bytes],
                               sent: Callable[[R], None], log: logging.Logger) -> None:
    """Every ``interval`` s until ``stop``: publish what ``round_`` returns to ``topic``, then call ``sent``."""
    s = settings
    await ensure_topics(s, [topic], timeout=s.startup_timeout)
    producer = await start_producer(s)
    failing = False
    try:
        while not stop.is_set():
            try:
                for record in await round_():
                    await producer.send_and_wait(topic, record.model_dump_json().encode(), key=key(record))
                    sent(record)
                if failing:
                    log.info("%s: rounds succeed again", name)
                failing = False
            except Exception as exc:  # noqa: BLE001 - ClickHouse or Kafka away: the next round tries again
                if not failing:
                    log.warning("%s: round failed (%s: %s); retrying every %.0f s", name, type(exc).__name__,
                                str(exc)[:200], interval)
                failing = True
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
    finally:
        await producer.stop()


async def publish_alerts_periodically(settings: Settings, stop: asyncio.Event, name: str, interval: float,
                                      round_: Callable[[], Awaitable[Sequence[AlertEvent]]],
                                      published: set[object], log: logging.Logger) -> None:
    def sent(alert: AlertEvent) -> None:
        published.add(alert.alert_id)
        log.info("%s: %s alert for %s", name, alert.kind, alert.fingerprint or alert.service)

    await publish_periodically(settings, stop, name, interval, settings.topic_alerts, round_,
                               lambda alert: (alert.fingerprint or alert.service).encode(), sent, log)
