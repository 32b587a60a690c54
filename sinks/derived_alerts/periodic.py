"""Periodic tasks of ``errstream notify`` that publish alerts they derive from ClickHouse (rules, escalation).

Each round asks its task for alerts and publishes them to the alerts topic (acks=all, idempotent); a
round that fails (ClickHouse or Kafka away) is logged once until a round succeeds again, and the next
round tries again. The alerts' deterministic ids make a repeat after a restart harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from errstream_core.consumer import start_producer
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from schemas.alerts import AlertEvent


async def publish_alerts_periodically(settings: Settings, stop: asyncio.Event, name: str, interval: float,
                                      round_: Callable[[], Awaitable[Sequence[AlertEvent]]],
                                      published: set[object], log: logging.Logger) -> None:
    s = settings
    await ensure_topics(s, [s.topic_alerts], timeout=s.startup_timeout)
    producer = await start_producer(s)
    failing = False
    try:
        while not stop.is_set():
            try:
                for alert in await round_():
                    await producer.send_and_wait(s.topic_alerts, alert.model_dump_json().encode(),
                                                 key=(alert.fingerprint or alert.service).encode())
                    published.add(alert.alert_id)
                    log.info("%s: %s alert for %s", name, alert.kind, alert.fingerprint or alert.service)
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
