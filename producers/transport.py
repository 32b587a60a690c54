"""The SDK's way to Kafka: a bounded queue drained by aiokafka on a background thread.

Why this shape:

* The application's thread only appends to a ``deque`` under a lock (well under
  a microsecond); building the JSON, compressing and talking to the broker all
  happen on one daemon thread with its own event loop, so a slow or dead broker
  never blocks or raises into the app.
* Memory is bounded twice: the queue has ``maxlen`` and drops its OLDEST entry
  when full (the newest errors are the ones someone is looking at), and at most
  ``max_in_flight`` records sit in aiokafka's buffers. Every drop is counted.
* Events go out as zstd-compressed record batches (``send_batch``), rotating over partitions
  (aiokafka's lz4 is fixed at level 9 and costs several times the CPU per record).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from errstream_core.settings import Settings

log = logging.getLogger("errstream.sdk")
SENDER_THREAD = "errstream-sdk-sender"
_KAFKA_LOGGERS = ("aiokafka", "aiokafka.conn", "aiokafka.cluster", "aiokafka.producer.producer",
                  "aiokafka.producer.sender")


def _not_from_sender(record: logging.LogRecord) -> bool:
    """aiokafka logs every failed connection at ERROR: during an outage that would flood the app's logs."""
    return record.threadName != SENDER_THREAD


_live_transports: weakref.WeakSet[KafkaTransport] = weakref.WeakSet()


def _restart_after_fork() -> None:
    for transport in list(_live_transports):
        transport._after_fork()


if hasattr(os, "register_at_fork"):  # once per process, not once per client
    os.register_at_fork(after_in_child=_restart_after_fork)


def _quiet_kafka_client_logs() -> None:
    for name in _KAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if _not_from_sender not in logger.filters:
            logger.addFilter(_not_from_sender)


@dataclass
class TransportStats:
    """Counters a service can export; ``dropped`` + ``failed`` + ``build_errors`` is what was lost."""

    queued: int = 0  # accepted from the app
    sent: int = 0  # acknowledged by the broker
    dropped: int = 0  # pushed out of the full queue (oldest first) or left at shutdown
    failed: int = 0  # the broker refused or timed out after retries
    build_errors: int = 0  # could not be turned into JSON (a bug; never raised into the app)
    connect_failures: int = 0
    connected: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Builder = Callable[[Any], tuple[bytes | None, bytes]]


class KafkaTransport:
    def __init__(
        self,
        settings: Settings,
        build: Builder,
        *,
        queue_size: int = 10_000,
        max_in_flight: int = 5_000,
        linger_ms: int = 20,
        compression: str | None = "zstd",
        producer_options: dict[str, Any] | None = None,
        topic: str | None = None,
    ) -> None:
        self.settings = settings
        self.topic = topic or settings.topic_errors
        self._build = build
        self._queue: deque[Any] = deque(maxlen=queue_size)
        self._lock = threading.Lock()
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._next_partition = 0
        self._producer_kwargs = {
            **settings.kafka_client_kwargs(),
            "linger_ms": linger_ms,
            "compression_type": compression,
            # acks=all + idempotence: on a replicated cluster a leader lost after acks=1 loses the batch, and
            # a retry after a leader change without idempotence writes it twice
            "acks": "all",
            "enable_idempotence": True,
            "max_batch_size": 256 * 1024,
            "request_timeout_ms": 15_000,
            **(producer_options or {}),
        }
        self.stats = TransportStats()
        self._closing = False
        self._thread: threading.Thread | None = None
        _quiet_kafka_client_logs()
        self._start_thread()
        _live_transports.add(self)

    # --- the application's side ----------------------------------------------------------
    def submit(self, item: Any) -> None:
        """Queue one item; when full, the oldest queued item is dropped and counted. Never blocks."""
        with self._lock:
            if len(self._queue) == self._queue.maxlen:
                self.stats.dropped += 1
            self._queue.append(item)
            self.stats.queued += 1

    def pending(self) -> int:
        return len(self._queue) + self._in_flight

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything queued was acknowledged; False on timeout or when the broker is unreachable."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() >= deadline or (not self.stats.connected and self.stats.connect_failures):
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 2.0) -> None:
        self.flush(timeout)
        self._closing = True
        if self._thread is not None:
            self._thread.join(timeout=max(timeout, 1.0))
        with self._lock:
            self.stats.dropped += len(self._queue)
            self._queue.clear()

    # --- the background thread ------------------------------------------------------------
    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=SENDER_THREAD, daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # The child has the queue but not the thread: start a new one (and forget the parent's in-flight work).
        self._lock = threading.Lock()
        self._in_flight = 0
        self.stats.connected = False
        if not self._closing:
            self._start_thread()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except Exception:  # the thread must not die silently, nor take the app with it
            log.exception("errstream SDK sender stopped")
        finally:
            loop.close()

    async def _connect(self) -> AIOKafkaProducer | None:
        producer = AIOKafkaProducer(**self._producer_kwargs)
        try:
            await producer.start()
        except Exception as exc:
            self.stats.connect_failures += 1
            log.debug("errstream: broker unreachable (%s)", exc)
            with contextlib.suppress(Exception):
                await producer.stop()
            return None
        self.stats.connected = True
        return producer

    async def _main(self) -> None:
        producer: AIOKafkaProducer | None = None
        backoff = 0.2
        try:
            while not (self._closing and not self._queue):
                if producer is None:
                    producer = await self._connect()
                    if producer is None:
                        if self._closing:
                            return
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 5.0)
                        continue
                    backoff = 0.2
                if not self._queue or self._in_flight >= self._max_in_flight:
                    await asyncio.sleep(0.01)
                    continue
                await self._send_some(producer)
            while self._in_flight:  # closing: let acknowledgements arrive
                await asyncio.sleep(0.01)
        finally:
            self.stats.connected = False
            if producer is not None:
                await producer.stop()

    async def _send_some(self, producer: AIOKafkaProducer) -> None:
        """Build up to a few hundred events into record batches and hand them to aiokafka.

        ``send_batch`` costs about a quarter of per-message ``send`` (no per-record
        partitioner, future and accumulator bookkeeping). Events carry no ordering
        need (the worker repartitions by fingerprint), so batches rotate over partitions.
        """
        try:
            partitions = sorted(await producer.partitions_for(self.topic))
        except Exception:
            log.debug("errstream: no metadata for %s", self.topic, exc_info=True)
            await asyncio.sleep(0.5)
            return
        budget = min(500, self._max_in_flight - self._in_flight)
        batch, count = producer.create_batch(), 0
        while budget and self._queue:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            budget -= 1
            try:
                key, value = self._build(item)
            except Exception:
                self.stats.build_errors += 1
                log.debug("errstream: could not build an event", exc_info=True)
                continue
            if batch.append(key=key, value=value, timestamp=None) is None:
                await self._ship(producer, batch, count, partitions)
                batch, count = producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    self.stats.failed += 1  # larger than a whole batch
                    continue
            count += 1
        if count:
            await self._ship(producer, batch, count, partitions)

    async def _ship(self, producer: AIOKafkaProducer, batch: Any, count: int, partitions: list[int]) -> None:
        batch.close()
        self._next_partition = (self._next_partition + 1) % len(partitions)
        self._in_flight += count
        try:
            fut = await producer.send_batch(batch, self.topic, partition=partitions[self._next_partition])
        except Exception:
            self._in_flight -= count
            self.stats.failed += count
            return
        fut.add_done_callback(functools.partial(self._delivered, count))

    def _delivered(self, count: int, fut: asyncio.Future[Any]) -> None:
        self._in_flight -= count
        if fut.cancelled() or fut.exception() is not None:
            self.stats.failed += count
        else:
            self.stats.sent += count
