"""Publishing issue status changes (``errstream issue resolve|ignore|ack|investigate|reopen``).

Changes go to a compacted topic keyed by fingerprint: the workers read it as
table state (ignored issues stay silent, resolved + new event = regression)
and compaction keeps the latest change per issue forever, however old.
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from schemas.issue_status import IssueStatusChange


async def ensure_status_topic(settings: Settings, timeout: float = 60.0) -> None:
    await ensure_topics(settings, [settings.topic_issue_status], timeout=timeout)  # config: errstream_core.topics


async def publish_status_change(settings: Settings, change: IssueStatusChange, timeout: float = 60.0) -> None:
    """Publish one change; ``timeout`` bounds the wait for the broker (it raises, never retries forever)."""
    await ensure_status_topic(settings, timeout)
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all", enable_idempotence=True,
                                request_timeout_ms=max(1, int(timeout * 1000)))
    try:
        await producer.start()
        await producer.send_and_wait(
            settings.topic_issue_status, change.model_dump_json().encode(), key=change.fingerprint.encode(),
        )
    finally:
        await producer.stop()
