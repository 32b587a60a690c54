"""Driving the real worker's detection from tests: events with chosen times, status changes, reading alerts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from errstream_core.settings import Settings
from producers.publisher import ErrorPublisher
from schemas.events import ErrorEvent, ExceptionInfo
from schemas.issue_status import IssueStatusChange
from tests.support.kafka import read_topic


def error(service: str, issue: str, at: datetime, *, trace_id: str | None = None, span_id: str | None = None,
          parent_span_id: str | None = None) -> ErrorEvent:
    """An event of a chosen issue (explicit fingerprint) at a chosen event time."""
    return ErrorEvent(
        service=service, timestamp=at, message=f"{issue} failed", fingerprint=[service, issue],
        exceptions=[ExceptionInfo(type="RuntimeError", value=f"{issue} failed")],
        trace_id=trace_id, span_id=span_id, parent_span_id=parent_span_id,
    )


def steady(service: str, issues: list[str], start: datetime, minutes: int, per_minute: int) -> list[ErrorEvent]:
    """``per_minute`` events a minute, round-robin over ``issues``, evenly spread over each minute."""
    out = []
    for m in range(minutes):
        for i in range(per_minute):
            at = start + timedelta(minutes=m, seconds=60 * i / per_minute)
            out.append(error(service, issues[i % len(issues)], at))
    return out


def publish(settings: Settings, events: list[ErrorEvent]) -> None:
    async def go() -> None:
        async with ErrorPublisher(settings) as pub:
            await pub.publish_many(events)

    asyncio.run(go())


def publish_status(settings: Settings, change: IssueStatusChange) -> None:
    """What `errstream issue resolve|ignore` does: the change on the compacted topic, keyed by fingerprint."""
    async def go() -> None:
        producer = AIOKafkaProducer(**settings.kafka_client_kwargs())
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic_issue_status, change.model_dump_json().encode(),
                                         key=change.fingerprint.encode())
        finally:
            await producer.stop()

    asyncio.run(go())


def committed(settings: Settings, topic: str) -> int:
    """Offsets the worker's consumer group committed on ``topic`` (summed over partitions)."""
    async def go() -> int:
        admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(settings.app_id)
        finally:
            await admin.close()
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)

    return asyncio.run(go())


def alerts(settings: Settings, expect: int = 10_000, timeout: float = 3.0) -> list[dict]:
    return read_topic(settings, settings.topic_alerts, expect=expect, timeout=timeout)


def wait_alerts(settings: Settings, ok: Callable[[list[dict]], bool], timeout: float = 60.0, what: str = "alerts",
                diagnostics: Callable[[], object] | None = None) -> list[dict]:
    """Poll the alerts topic until ``ok(alerts)``; then linger a little so that extra alerts would show."""
    deadline = time.monotonic() + timeout
    while True:
        got = alerts(settings, timeout=1.5)
        if ok(got):
            return got
        if time.monotonic() > deadline:
            extra = f"\n{diagnostics()}" if diagnostics else ""
            raise AssertionError(f"timed out waiting for {what}; got {[(a['kind'], a['dedup_key']) for a in got]}"
                                 f"{extra}")


def of_kind(got: list[dict], kind: str) -> list[dict]:
    return [a for a in got if a["kind"] == kind]


def trace_id() -> str:
    return uuid.uuid4().hex
