"""An asyncio publisher of error events to the ``errors`` topic.

The building block of the SDK, the HTTP gateway and ``errstream send``: it
serialises with pydantic's JSON encoder, keys by event id (spreading load over
partitions; grouping repartitions later by fingerprint) and lets aiokafka batch
and compress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from errstream_core.settings import Settings
from schemas.events import ErrorEvent


class ErrorPublisher:
    def __init__(self, settings: Settings, *, linger_ms: int = 5, compression: str | None = "zstd",
                 ack_timeout: float = 30.0, max_batch_bytes: int = 16_384) -> None:
        self.settings = settings
        self.ack_timeout = ack_timeout  # publish_coalesced callers get TimeoutError after this
        self._producer = AIOKafkaProducer(
            **settings.kafka_client_kwargs(),
            linger_ms=linger_ms,
            compression_type=compression,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=int(ack_timeout * 1000),
            max_batch_size=max_batch_bytes,
        )
        self._pending: list[tuple[bytes | None, bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._next_partition = 0

    async def __aenter__(self) -> ErrorPublisher:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()  # else aiokafka warns "Unclosed AIOKafkaProducer" at exit
            raise
        return self

    async def __aexit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | None) -> None:
        await self._producer.stop()

    async def reachable(self, timeout: float = 2.0) -> bool:
        """Whether a broker answers a metadata request now: a started producer says nothing about that, and
        during an outage it keeps its connections' objects while every publish fails."""
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout)
        except Exception:  # noqa: BLE001 - any failure means: not reachable now
            return False
        return True

    async def publish(self, event: ErrorEvent) -> None:
        await self.publish_raw(event.model_dump_json().encode(), key=event.event_id.hex.encode())

    async def publish_raw(self, payload: bytes, key: bytes | None = None) -> None:
        """Publish bytes as they are (the worker validates them); waits for the broker's ack."""
        await self._producer.send_and_wait(self.settings.topic_errors, payload, key=key)

    async def publish_to(self, topic: str, payload: bytes, key: bytes | None = None) -> None:
        """One record to another topic (the gateway's session aggregates): acknowledged before returning."""
        await self._producer.send_and_wait(topic, payload, key=key)

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

    async def publish_coalesced(self, payload: bytes, key: bytes | None = None) -> None:
        """Publish and wait for the ack, sharing record batches with concurrent callers.

        The gateway's hot path: every request publishes one event, and aiokafka's
        per-message ``send`` costs about four times what appending to a record batch
        does. Concurrent callers are gathered for one loop iteration, written as
        zstd record batches with ``send_batch`` (rotating over partitions: the worker
        repartitions by fingerprint), and each caller is released when its batch is
        acknowledged.
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((key, payload, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_pending())
        await fut

    async def _flush_pending(self) -> None:
        await asyncio.sleep(0)  # let the requests already in the loop join this batch
        loop = asyncio.get_running_loop()
        while self._pending:
            pending, self._pending = self._pending, []
            # One timer per gathered group, not an asyncio.timeout per caller (that was 20 µs a request).
            loop.call_later(self.ack_timeout, _expire, [fut for *_, fut in pending])
            try:
                partitions = await self._partitions()
            except Exception as exc:
                for *_, fut in pending:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            batch = self._producer.create_batch()
            members: list[asyncio.Future[None]] = []
            for key, payload, fut in pending:
                if batch.append(key=key, value=payload, timestamp=None) is None:
                    await self._ship(batch, members, partitions)
                    batch, members = self._producer.create_batch(), []
                    if batch.append(key=key, value=payload, timestamp=None) is None:
                        if not fut.done():
                            fut.set_exception(MessageSizeTooLargeError())
                        continue
                members.append(fut)
            await self._ship(batch, members, partitions)

    async def _partitions(self) -> list[int]:
        # The cluster's cached metadata; awaiting aiokafka's partitions_for on every flush was 5 % of the gateway.
        known = self._producer.client.cluster.partitions_for_topic(self.settings.topic_errors)
        return sorted(known if known else await self._producer.partitions_for(self.settings.topic_errors))

    async def _ship(self, batch: object, members: list[asyncio.Future[None]], partitions: list[int]) -> None:
        if not members:
            return
        batch.close()  # type: ignore[attr-defined]
        self._next_partition = (self._next_partition + 1) % len(partitions)
        try:
            acked = await self._producer.send_batch(batch, self.settings.topic_errors,  # type: ignore[arg-type]
                                                    partition=partitions[self._next_partition])
        except Exception as exc:
            for fut in members:
                if not fut.done():
                    fut.set_exception(exc)
            return

        def release(done: asyncio.Future[object]) -> None:
            error = None if done.cancelled() else done.exception()
            for fut in members:
                if fut.done():
                    continue
                if done.cancelled() or error is not None:
                    fut.set_exception(error or asyncio.CancelledError())
                else:
                    fut.set_result(None)

        acked.add_done_callback(release)


def _expire(futures: list[asyncio.Future[None]]) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_exception(TimeoutError("no acknowledgement from Kafka in time"))
