"""Driving the real worker's detection from tests: events with chosen times, status changes, reading alerts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from errstream.local.process import wait_for
from errstream_core.settings import Settings
from errstream_core.topics import by_fingerprint_topic, by_service_topic, by_trace_topic
from producers.publisher import ErrorPublisher
from schemas.events import ErrorEvent, ExceptionInfo
from schemas.issue_status import IssueStatusChange
from tests.support.kafka import group_lag, read_to_end


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


def alerts(settings: Settings) -> list[dict]:
    """Every alert on the topic now (read to its end offsets: no waiting out a timeout)."""
    return [orjson.loads(value) for _, value in read_to_end(settings, settings.topic_alerts) if value is not None]


def worker_lag(settings: Settings) -> int:
    """Records published so far that the worker has not committed: its processing stage on ``errors``,
    then detection's agents on their three topics (read in that order, so what the stage forwarded before
    committing is counted)."""
    stage = group_lag(settings, f"{settings.app_id}-process", [settings.topic_errors])
    agents = [by_fingerprint_topic(settings), by_service_topic(settings), by_trace_topic(settings)]
    return stage + group_lag(settings, settings.app_id, agents)


def caught_up(settings: Settings, timeout: float = 60.0, diagnostics: Callable[[], object] | None = None) -> list[dict]:
    """Wait until the worker has handled everything published so far; then the alerts on the topic.

    What "nothing more arrives" rests on, as a condition rather than a sleep: the processing stage
    commits ``errors`` only after its outputs to detection are acknowledged, and detection commits its
    input only after the alerts it raised are acknowledged (send-then-store). Once both groups have
    committed to the end of their input, every alert that input can raise is on the topic. Alerts raised
    by timers rather than input (chains closing) are not covered: those checks keep a time window.
    """
    wait_for(lambda: worker_lag(settings), lambda n: n == 0, timeout, "the worker to commit everything published",
             diagnostics=diagnostics, interval=0.25)
    return alerts(settings)


def wait_alerts(settings: Settings, ok: Callable[[list[dict]], bool], timeout: float = 60.0, what: str = "alerts",
                diagnostics: Callable[[], object] | None = None) -> list[dict]:
    """Poll the alerts topic until ``ok(alerts)`` (``caught_up`` then tells whether more would come)."""
    deadline = time.monotonic() + timeout
    while True:
        got = alerts(settings)
        if ok(got):
            return got
        time.sleep(0.25)
        if time.monotonic() > deadline:
            extra = f"\n{diagnostics()}" if diagnostics else ""
            raise AssertionError(f"timed out waiting for {what}; got {[(a['kind'], a['dedup_key']) for a in got]}"
                                 f"{extra}")


def of_kind(got: list[dict], kind: str) -> list[dict]:
    return [a for a in got if a["kind"] == kind]


def trace_id() -> str:
    return uuid.uuid4().hex
