"""The worker's first stage: ``errors`` → validate/scrub/group/sample → processed, DLQ and detection.

A step on the consumer runtime (``errstream_core.consumer``), running inside the
faust worker process: faust keeps what it is good at (detection's tables,
changelogs and recovery, fed by this stage), and this stateless stage avoids
faust's per-message machinery: run as a faust agent, the same processing cost several
times its own CPU in faust's stream, acking and one-``send``-per-record produce path
(figures: docs/performance.md, "Why the hot path is built this way").

``submit`` processes each record at once and appends its outputs to aiokafka record
batches per (topic, partition) — processed events keyed and partitioned by
fingerprint (so duplicates of an event meet the sink's dedup window on one
partition), dead letters, and per poll one *signal bundle* per detection partition.
``poll`` ships them and reports the input offsets done only once every output is
acknowledged; the runtime commits them. That wait is also when detection's faust agents,
on the same event loop, get their turn: processing the next poll meanwhile starved them
(alert latency 0.1 s → 6 s under load; docs/performance.md, "One insert per flush").

Any exception while handling one record (decode, validation, scrubbing, grouping,
detection signals, encoding) dead-letters that record with the stage and reason;
the partition moves on. A broker that cannot be reached is not a record's fault:
the stage drops what it had not shipped and asks the runtime to read the
uncommitted records again after a backoff.

So delivery is at-least-once: a crash or a rebalance between shipping and the
commit re-processes a batch; the sink drops the duplicate events by id, and
detection's state and deterministic alert ids absorb the replays.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from errstream_core.consumer import ConsumerRuntime, DeadLetters, InfrastructureError, Step, start_producer
from errstream_core.consumer.dead_letters import describe
from errstream_core.settings import Settings
from errstream_core.topics import by_fingerprint_topic, key_hash
from schemas.fast import encode
from stream_processors.event_processor import EventProcessor
from stream_processors.grouping_rules_follower import RulesFollower
from stream_processors.metrics import REJECTED

log = logging.getLogger("errstream.worker")

BATCH_MAX = 1_000
BATCH_WITHIN_MS = 50  # bounds the latency a poll adds when traffic is light
# Outputs are shipped at every poll anyway, so a batch can hold a whole poll's records for a partition:
# fewer, larger batches cost less per record to build, send and compress, and compress better.
OUTPUT_BATCH_BYTES = 512 * 1024
# zstd level 3 costs about a fifth of aiokafka's lz4 (level 9, fixed) per record and compresses about
# three times smaller (figures: docs/performance.md, "Compression of internal topics").
INTERNAL_COMPRESSION = "zstd"


class _Outputs:
    """Record batches per (topic, partition), shipped as they fill; ``flush`` waits for every ack."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.open: dict[tuple[str, int], Any] = {}
        self.acks: list[asyncio.Future[Any]] = []

    async def add(self, topic: str, partition: int, key: bytes | None, value: bytes,
                  headers: list[tuple[str, bytes]] | None = None) -> None:
        slot = (topic, partition)
        batch = self.open.get(slot)
        if batch is None:
            batch = self.open[slot] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers or []) is None:
            if batch.record_count() == 0:
                raise MessageSizeTooLargeError(f"a record of {len(value)} bytes does not fit a batch")
            await self._ship(slot)
            batch = self.open[slot] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers or []) is None:
                raise MessageSizeTooLargeError(f"a record of {len(value)} bytes does not fit a batch")

    async def _ship(self, slot: tuple[str, int]) -> None:
        batch = self.open.pop(slot)
        batch.close()
        self.acks.append(await self.producer.send_batch(batch, slot[0], partition=slot[1]))

    async def flush(self) -> None:
        for slot in list(self.open):
            await self._ship(slot)
        if self.acks:
            await asyncio.wait(self.acks)  # unlike gather, a cancelled wait leaves the acks pending, not cancelled
            acks, self.acks = self.acks, []
            for ack in acks:
                ack.result()  # raises the first failure

    def discard(self) -> None:
        self.open.clear()
        for ack in self.acks:
            if not ack.done():
                ack.cancel()
        self.acks.clear()


class ProcessingStage(Step):
    name = "worker"

    def __init__(self, settings: Settings, processor: EventProcessor | None = None) -> None:
        self.settings = settings
        self.processor = processor or EventProcessor.from_settings(settings)
        self.detection_topic = by_fingerprint_topic(settings) if settings.detection_enabled else None
        self.producer: AIOKafkaProducer | None = None
        self.outputs: _Outputs | None = None
        self.dead_letters = DeadLetters("worker", settings.topic_dlq)
        self.processed_partitions = 0
        self.signals: dict[int, list[list[Any]]] = defaultdict(list)
        self.taken: dict[TopicPartition, tuple[int, int]] = {}  # first offset not committed, next offset
        self.interrupted = False  # cancelled mid-way: outputs may be lost, so nothing more is reported done
        self.rules_follower = RulesFollower(settings, self.processor.rules)  # server-side grouping rules
        self.following_rules = False

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        try:
            if self.producer is None:
                producer = await start_producer(s, compression_type=INTERNAL_COMPRESSION, linger_ms=5,
                                                max_batch_size=OUTPUT_BATCH_BYTES)
                self.producer = self.dead_letters.producer = producer
                self.outputs = _Outputs(producer)
            self.processed_partitions = len(await self.producer.partitions_for(s.topic_processed))
            if not self.following_rules:
                await self.rules_follower.start()
                self.following_rules = True
        except KafkaError as exc:
            raise InfrastructureError("Kafka", exc) from exc

    async def close(self) -> None:
        if self.following_rules:
            self.following_rules = False
            await asyncio.wait_for(self.rules_follower.stop(), 3)
        if self.producer is not None:
            await asyncio.wait_for(self.producer.stop(), 3)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        s = self.settings
        runtime = ConsumerRuntime(s, self, topics=[s.topic_errors], group=f"{s.app_id}-process",
                                  max_records=BATCH_MAX, poll_ms=BATCH_WITHIN_MS)
        await runtime.run(stop or asyncio.Event())

    # -- the step ------------------------------------------------------------
    async def submit(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        s = self.settings
        outputs = self.outputs
        assert outputs is not None
        first = self.taken[tp][0] if tp in self.taken else records[0].offset
        end = self.taken[tp][1] if tp in self.taken else first
        now = datetime.now(UTC)
        process = self.processor.process
        n = s.topic_partitions
        abandoned = False
        # every grouping rules version in force at these records' broker time must be known first
        await self.rules_follower.ready_for(max(r.timestamp for r in records))
        try:
            for record in records:
                try:
                    outcome = process(record.value, partition=record.partition, offset=record.offset,
                                      received_at=now, record_timestamp_ms=record.timestamp)
                    p = outcome.processed
                    if p is not None:
                        key = p.fingerprint.encode()
                        hashed = key_hash(key)
                        value = outcome.encoded or encode(p)
                        signal = outcome.signal if self.detection_topic is not None else None
                        await outputs.add(s.topic_processed, hashed % self.processed_partitions, key, value,
                                          [("event_id", p.event.event_id.hex.encode())])
                        if signal is not None:
                            self.signals[hashed % n].append(signal)
                    elif outcome.dead_letter is not None:
                        dl = outcome.dead_letter
                        dl.stage = dl.stage or "validate"
                        await self.dead_letters.publish(dl, record.key)
                except KafkaError as exc:
                    if isinstance(exc, MessageSizeTooLargeError):
                        await self._refuse(tp, record, "produce", "too_large", describe(exc))
                    else:
                        raise
                except Exception as exc:  # noqa: BLE001 - e.g. RecursionError: this record's fault, not the stage's
                    await self._refuse(tp, record, "process", "processing_error", describe(exc))
                end = record.offset + 1
        except asyncio.CancelledError:
            self.interrupted = True
            raise
        except (KafkaError, InfrastructureError) as exc:
            self.taken[tp] = (first, end)  # so the rewind covers this partition too
            abandoned = True
            raise self._abandon(exc) from exc
        finally:
            self.processor.flush_metrics()
            # Only what was handled is done: a shutdown that cancels us mid-poll must not commit the rest.
            if not abandoned and end > first:
                self.taken[tp] = (first, end)

    async def _refuse(self, tp: TopicPartition, record: Any, stage: str, reason: Any, detail: str) -> None:
        self.processor.counts["rejected"] = self.processor.counts.get("rejected", 0) + 1
        REJECTED.labels(stage, reason).inc()
        await self.dead_letters.refuse(record.value, source_topic=tp.topic, partition=tp.partition,
                                       offset=record.offset, stage=stage, reason=reason,
                                       detail=f"the worker failed on this record: {detail}", key=record.key)

    def _abandon(self, exc: BaseException) -> InfrastructureError:
        """Drop what was not shipped; the runtime reads the uncommitted records again after a backoff."""
        rewind = {tp: first for tp, (first, _) in self.taken.items()}
        self.taken.clear()
        self.signals.clear()
        if self.outputs is not None:
            self.outputs.discard()
        self.dead_letters.acks.clear()
        cause = exc.cause if isinstance(exc, InfrastructureError) else exc
        return InfrastructureError("Kafka", cause, rewind)

    async def poll(self, force: bool = False) -> dict[TopicPartition, int]:
        if not self.taken or self.interrupted:
            return {}
        outputs = self.outputs
        assert outputs is not None
        try:
            if self.detection_topic is not None:
                for partition, bundle in self.signals.items():
                    await outputs.add(self.detection_topic, partition, None, orjson.dumps(bundle))
                self.signals.clear()
            await outputs.flush()
            await self.dead_letters.flush()
        except asyncio.CancelledError:
            self.interrupted = True
            raise
        except (KafkaError, InfrastructureError) as exc:
            raise self._abandon(exc) from exc
        done = {tp: end for tp, (_, end) in self.taken.items()}
        self.taken.clear()
        return done

    async def revoke(self, partitions: set[TopicPartition], deadline: float) -> dict[TopicPartition, int]:
        try:
            return await self.poll(force=True)
        except InfrastructureError as exc:
            log.warning("worker: hand-over without shipping the last batch (%s); the next owner re-processes it",
                        exc)
            return {}
        finally:
            if self.taken:  # cancelled by the hand-over budget: forget it, it will be re-processed
                self._abandon(RuntimeError("hand-over"))
