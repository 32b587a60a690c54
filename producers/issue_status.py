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


async def ensure_status_topic(settings: Settings) -> None:
    await ensure_topics(settings, [settings.topic_issue_status])  # its config: errstream_core.topics


async def publish_status_change(settings: Settings, change: IssueStatusChange) -> None:
    await ensure_status_topic(settings)
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topic_issue_status, change.model_dump_json().encode(), key=change.fingerprint.encode(),
        )
    finally:
        await producer.stop()
