"""An asyncio publisher of error events to the ``errors`` topic.

The building block of the SDK, the HTTP gateway and ``errstream send``: it
serialises with pydantic's JSON encoder, keys by event id (spreading load over
partitions; grouping repartitions later by fingerprint) and lets aiokafka batch
and compress.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

from aiokafka import AIOKafkaProducer

from errstream.settings import Settings
from schemas.events import ErrorEvent


class ErrorPublisher:
    def __init__(self, settings: Settings, *, linger_ms: int = 5, compression: str | None = "lz4") -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(
            **settings.kafka_client_kwargs(),
            linger_ms=linger_ms,
            compression_type=compression,
            acks="all",
            enable_idempotence=True,
        )

    async def __aenter__(self) -> ErrorPublisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | None) -> None:
        await self._producer.stop()

    async def publish(self, event: ErrorEvent) -> None:
        await self.publish_raw(event.model_dump_json().encode(), key=event.event_id.hex.encode())

    async def publish_raw(self, payload: bytes, key: bytes | None = None) -> None:
        """Publish bytes as they are (the worker validates them); waits for the broker's ack."""
        await self._producer.send_and_wait(self.settings.topic_errors, payload, key=key)

    async def publish_many(self, events: Iterable[ErrorEvent]) -> int:
        futures = [
            await self._producer.send(self.settings.topic_errors, e.model_dump_json().encode(), key=e.event_id.hex.encode())
            for e in events
        ]
        for f in futures:
            await f
        return len(futures)

    async def publish_many_raw(self, payloads: Iterable[bytes]) -> int:
        futures = [await self._producer.send(self.settings.topic_errors, p) for p in payloads]
        for f in futures:
            await f
        return len(futures)
