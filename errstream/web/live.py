"""Live alerts for open pages: one consumer of the ``alerts`` topic, fanned out to Server-Sent Events.

The web app reads ``alerts`` from its end (no consumer group, nothing committed: a
page wants what happens from now on) and hands each alert to every connected
subscriber's bounded queue; a slow browser loses its oldest alerts, never blocks
the others. New-issue alerts are also offered to the ownership rules. Kafka being
down is logged once per state change and retried with capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from errstream_core.settings import Settings
from schemas.alerts import AlertEvent

log = logging.getLogger("errstream.web")
QUEUE_SIZE = 100
RECENT_FINGERPRINTS = 10_000  # issues announced by alerts, remembered so they can be acted on before they are stored


class AlertFeed:
    def __init__(self, settings: Settings,
                 on_new_issue: Callable[[AlertEvent], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.on_new_issue = on_new_issue
        self.subscribers: set[asyncio.Queue[tuple[str, dict[str, Any]]]] = set()
        self.connected = asyncio.Event()
        self.received = 0
        # Fingerprints of alerts read since start (oldest dropped first): an issue an alert announced is known to
        # the actions even while the sink has not stored its first counts yet.
        self.recent_fingerprints: dict[str, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self) -> asyncio.Queue[tuple[str, dict[str, Any]]]:
        q: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
        self.subscribers.discard(q)

    def publish(self, doc: dict[str, Any], kind: str = "alert") -> None:
        """Hand ``doc`` to every open stream as an SSE event of ``kind`` (``alert``, or the pulse's ``tick``)."""
        for q in list(self.subscribers):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait((kind, doc))

    async def run(self) -> None:
        delay, down = 0.5, False
        while True:
            consumer = AIOKafkaConsumer(self.settings.topic_alerts, **self.settings.kafka_client_kwargs(),
                                        group_id=None, enable_auto_commit=False, auto_offset_reset="latest")
            try:
                await consumer.start()
                # Pin the start to the current end now, so an alert published after this point is never missed
                # by a lazy first fetch that would only then look up "latest".
                await consumer.seek_to_end()
                for tp in consumer.assignment():
                    await consumer.position(tp)
                if down:
                    log.info("web: alerts feed connected to Kafka again")
                delay, down = 0.5, False
                self.connected.set()
                while True:
                    batches = await consumer.getmany(timeout_ms=1000)
                    for records in batches.values():
                        for record in records:
                            await self._handle(record.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                if not down:
                    log.warning("web: alerts feed cannot read %s (%s); retrying", self.settings.topic_alerts, exc)
                down = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _handle(self, value: bytes | None) -> None:
        if not value:
            return
        try:
            alert = AlertEvent.model_validate_json(value)
        except ValidationError:
            return  # the alerts sink dead-letters malformed records; a page just skips them
        self.received += 1
        if alert.fingerprint:
            self.recent_fingerprints[alert.fingerprint] = None
            if len(self.recent_fingerprints) > RECENT_FINGERPRINTS:
                del self.recent_fingerprints[next(iter(self.recent_fingerprints))]
        self.publish(orjson.loads(alert.model_dump_json()))
        if alert.kind == "new_issue" and alert.fingerprint and self.on_new_issue is not None:
            task = asyncio.create_task(self._new_issue(alert))  # may wait for the sink; never holds the feed up
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _new_issue(self, alert: AlertEvent) -> None:
        assert self.on_new_issue is not None
        try:
            await self.on_new_issue(alert)
        except Exception as exc:  # ownership is best effort; the alert was delivered
            log.warning("web: ownership rules for %s failed: %s", alert.fingerprint, exc)
