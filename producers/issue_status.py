"""Publishing issue status changes and merges (``errstream issue …`` and ``errstream web``).

Changes go to compacted topics keyed by fingerprint: the workers read them as
table state (ignored issues stay silent, resolved + new event = regression; a
merged fingerprint alerts as its primary) and compaction keeps the latest change
per issue forever, however old.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from schemas.issue_merge import IssueMergeChange
from schemas.issue_status import IssueStatusChange


class _PerIssue(Protocol):
    fingerprint: str

    def model_dump_json(self) -> str: ...


class StatusPublisher:
    """A long-lived producer for the status topic (the web app keeps one; the CLI uses one per command).

    ``publish`` returns once the broker acknowledged every change (acks=all), so a caller that
    answers "done" after it can be sure the change is durable. ``timeout`` bounds every wait for the
    broker: it raises, never retries forever. ``topic``: another compacted per-issue topic (merges).
    """

    def __init__(self, settings: Settings, timeout: float = 60.0, topic: str | None = None) -> None:
        self.settings = settings
        self.timeout = timeout
        self.topic = topic or settings.topic_issue_status
        self.producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self.producer is not None:
                return
            await ensure_topics(self.settings, [self.topic], timeout=self.timeout)  # config: errstream_core.topics
            producer = AIOKafkaProducer(**self.settings.kafka_client_kwargs(), acks="all", enable_idempotence=True,
                                        request_timeout_ms=max(1, int(self.timeout * 1000)))
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self.producer = producer

    async def stop(self) -> None:
        if self.producer is not None:
            producer, self.producer = self.producer, None
            await producer.stop()

    async def publish(self, changes: Sequence[_PerIssue]) -> None:
        await self.start()
        assert self.producer is not None
        sent = [await self.producer.send(self.topic, c.model_dump_json().encode(), key=c.fingerprint.encode())
                for c in changes]
        await asyncio.gather(*sent)


def merge_publisher(settings: Settings, timeout: float = 60.0) -> StatusPublisher:
    """A publisher for the merge topic (``schemas.issue_merge``)."""
    return StatusPublisher(settings, timeout, settings.topic_issue_merges)


async def publish_merges(settings: Settings, changes: Sequence[IssueMergeChange], timeout: float = 60.0) -> None:
    """Publish merge records (one command's worth); ``timeout`` bounds the wait for the broker."""
    publisher = merge_publisher(settings, timeout)
    try:
        await publisher.publish(changes)
    finally:
        await publisher.stop()


async def publish_status_change(settings: Settings, change: IssueStatusChange, timeout: float = 60.0) -> None:
    """Publish one change; ``timeout`` bounds the wait for the broker (it raises, never retries forever)."""
    publisher = StatusPublisher(settings, timeout)
    try:
        await publisher.publish([change])
    finally:
        await publisher.stop()
