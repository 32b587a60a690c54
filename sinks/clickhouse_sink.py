"""Kafka → ClickHouse with explicit commits (the Arroyo pattern, not faust).

At-least-once consumption plus idempotent storage gives exact counts even when
the sink is killed with SIGKILL or its consumer group is reset and replayed:

1. Records are buffered per partition; a batch is cut by size or age.
2. Before inserting offsets ``[a, b]`` of a partition, the sink records the
   boundaries in ClickHouse ``sink_batches`` — a write-ahead batch log.
3. It inserts with ``insert_deduplication_token = group/topic/partition/a-b``.
4. It commits ``b + 1`` to Kafka.

Whoever replays those offsets later (the same sink after a crash between 3 and
4, another sink after a rebalance, or a deliberate offset reset) loads the log
when the partition is assigned, cuts exactly the same batches, and ClickHouse
discards the repeated blocks by token (within the tables'
``non_replicated_deduplication_window``). Duplicates created upstream (a worker
that re-processed a batch) have other offsets, so the sink also skips event ids
already seen within the last ``sink_dedup_lookback`` offsets of the partition —
a window it re-reads from Kafka (headers only) when a partition is assigned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from clickhouse_connect.driver.client import Client
from prometheus_client import Counter
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_exponential_jitter

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from schemas.dead_letter import DeadLetter
from sinks.clickhouse_client import connect
from sinks.migrate import migrate
from sinks.rows import EVENT_COLUMNS, OCCURRENCE_COLUMNS, MinuteCounts, PreparedRecord, prepare_record

log = logging.getLogger("errstream.sink")

ROWS = Counter("errstream_sink_rows", "Rows written to ClickHouse", ["table"])
SKIPPED = Counter("errstream_sink_skipped", "Records not written, by reason", ["reason"])



@dataclass
class PartitionBuffer:
    first: int | None = None
    last: int | None = None
    records: list[PreparedRecord] = field(default_factory=list)
    plans: deque[tuple[int, int]] = field(default_factory=deque)  # recorded (first, last) still to replay
    seen: OrderedDict[str, int] = field(default_factory=OrderedDict)
    started: float = 0.0

    @property
    def planned_end(self) -> int | None:
        return self.plans[0][1] if self.plans else None

    def next_buffer(self) -> PartitionBuffer:
        """An empty buffer that keeps the dedup window and the plans still ahead."""
        plans = deque(self.plans)
        if plans and self.last is not None and self.last >= plans[0][1]:
            plans.popleft()
        return PartitionBuffer(seen=self.seen, plans=plans)

    def remember(self, event_id: str, offset: int, lookback: int) -> bool:
        """True when the id is new within the lookback window of offsets."""
        while self.seen:
            oldest_id, oldest_offset = next(iter(self.seen.items()))
            if oldest_offset >= offset - lookback:
                break
            self.seen.popitem(last=False)
        if event_id in self.seen:
            return False
        self.seen[event_id] = offset
        return True

    def ready_for_plan(self) -> bool:
        """A replayed batch may only be flushed whole, with its recorded boundaries."""
        return self.planned_end is None or (self.last is not None and self.last >= self.planned_end)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: ClickHouseSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.sink.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.sink.on_assigned(set(assigned))


class ClickHouseSink:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client
        self.topic = settings.topic_processed
        self.group = settings.sink_group
        self.buffers: dict[TopicPartition, PartitionBuffer] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.stats = {"batches": 0, "events": 0, "stored": 0, "duplicates": 0, "invalid": 0}

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        if self.client is None:
            self.client = await asyncio.to_thread(connect, self.settings)
        await asyncio.to_thread(migrate, self.settings, self.client)
        await ensure_topics(self.settings, timeout=self.settings.startup_timeout)
        kw = self.settings.kafka_client_kwargs()
        self.producer = AIOKafkaProducer(**kw, acks="all", enable_idempotence=True)
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            **kw,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=10_000,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            try:
                await self.flush(force=True)
            except Exception:
                log.exception("final flush failed; the batch will be replayed")
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        await self.start()
        try:
            while stop is None or not stop.is_set():
                await self.poll_once()
        finally:
            await self.stop()

    # -- rebalance -----------------------------------------------------------
    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.flush(force=True, only=revoked)
        except Exception:
            log.exception("flush on revoke failed; %s will be replayed by the next owner", revoked)
        for tp in revoked:
            self.buffers.pop(tp, None)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        assert self.consumer is not None
        for tp in assigned:
            buf = PartitionBuffer()
            committed = await self.consumer.committed(tp)
            start = committed if committed is not None and committed >= 0 else 0
            plans: list[tuple[int, int]] = []

            def load(tp: TopicPartition = tp, start: int = start, plans: list[tuple[int, int]] = plans) -> None:
                plans[:] = self._load_plans(tp, start)

            await self._retrying(load)
            buf.plans = deque(plans)
            if buf.plans:
                log.info("%s replays %d recorded batch(es) from offset %d", tp, len(buf.plans), start)
            if start > 0:
                await self._seed_seen(tp, buf, start)
            self.buffers[tp] = buf

    def _load_plans(self, tp: TopicPartition, start: int) -> list[tuple[int, int]]:
        assert self.client is not None
        rows = self.client.query(
            f"SELECT first_offset, last_offset FROM {self.settings.clickhouse_database}.sink_batches FINAL "
            "WHERE consumer_group = {g:String} AND topic = {t:String} AND partition = {p:UInt32} "
            "AND last_offset >= {o:UInt64} ORDER BY first_offset",
            parameters={"g": self.group, "t": tp.topic, "p": tp.partition, "o": start},
        ).result_rows
        return [(int(a), int(b)) for a, b in rows]

    async def _seed_seen(self, tp: TopicPartition, buf: PartitionBuffer, committed: int) -> None:
        lookback = self.settings.sink_dedup_lookback
        start = max(0, committed - lookback)
        if start >= committed:
            return
        reader = AIOKafkaConsumer(**self.settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False)
        await reader.start()
        try:
            reader.assign([tp])
            reader.seek(tp, start)
            while await reader.position(tp) < committed:
                batch = await reader.getmany(tp, timeout_ms=1000, max_records=10_000)
                msgs = batch.get(tp, [])
                if not msgs:
                    break
                for m in msgs:
                    if m.offset >= committed:
                        break
                    eid = dict(m.headers or ()).get("event_id")
                    if eid:
                        buf.remember(eid.decode(), m.offset, lookback)
        finally:
            await reader.stop()

    # -- consuming -----------------------------------------------------------
    async def poll_once(self, timeout_ms: int = 200) -> None:
        assert self.consumer is not None
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=10_000)
        lookback = self.settings.sink_dedup_lookback
        for tp, msgs in batches.items():
            buf = self.buffers.get(tp)
            if buf is None:
                # aiokafka can hand out records before on_partitions_assigned has finished loading the
                # batch log; buffering them now could cut batches the log does not know. Read them again.
                self.consumer.seek(tp, msgs[0].offset)
                continue
            for m in msgs:
                if buf.planned_end is not None and buf.last is not None and buf.last >= buf.planned_end:
                    # A recorded batch is complete: flush exactly it before taking newer records.
                    await self.flush(force=True, only={tp})
                    buf = self.buffers[tp]
                if buf.first is None:
                    buf.first, buf.started = m.offset, time.monotonic()
                buf.last = m.offset
                eid = dict(m.headers or ()).get("event_id")
                if eid is not None and not buf.remember(eid.decode(), m.offset, lookback):
                    self.stats["duplicates"] += 1
                    SKIPPED.labels("duplicate").inc()
                    continue
                record = prepare_record(m.value, source_topic=m.topic, partition=m.partition, offset=m.offset)
                if isinstance(record, DeadLetter):
                    await self._dead_letter(record)
                    continue
                buf.records.append(record)
        await self.flush()

    async def _dead_letter(self, dl: DeadLetter) -> None:
        self.stats["invalid"] += 1
        SKIPPED.labels("invalid").inc()
        log.warning("dead letter: %s (%s) at %s/%s", dl.reason, dl.detail[:200], dl.source_partition,
                    dl.source_offset)
        assert self.producer is not None
        await self.producer.send_and_wait(self.settings.topic_dlq, dl.model_dump_json().encode())

    def _due(self) -> bool:
        rows = sum(len(b.records) for b in self.buffers.values())
        if rows >= self.settings.sink_batch_rows:
            return True
        now = time.monotonic()
        return any(
            b.first is not None and now - b.started >= self.settings.sink_batch_seconds for b in self.buffers.values()
        )

    # -- flushing ------------------------------------------------------------
    async def flush(self, force: bool = False, only: set[TopicPartition] | None = None) -> None:
        if not force and not self._due():
            return
        assert self.consumer is not None
        ready = {
            tp: b for tp, b in self.buffers.items()
            if b.first is not None and (only is None or tp in only) and b.ready_for_plan()
        }
        if not ready:
            return
        new_plans = [
            [self.group, tp.topic, tp.partition, b.first, b.last]
            for tp, b in ready.items() if b.planned_end is None
        ]
        if new_plans:
            await self._retrying(lambda: self._record_plans(new_plans))
        for tp, b in ready.items():
            assert b.first is not None and b.last is not None
            first, last = (b.plans[0] if b.plans else (b.first, b.last))
            await self._insert(tp, first, last, b.records)
        ends = {tp: OffsetAndMetadata(b.last + 1, "") for tp, b in ready.items()}  # type: ignore[operator]
        try:
            await self.consumer.commit(ends)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            log.warning("commit after insert failed (%s); the batch log makes the replay idempotent", exc)
        for tp, b in ready.items():
            self.buffers[tp] = b.next_buffer()
        self.stats["batches"] += 1

    def _record_plans(self, rows: list[list[Any]]) -> None:
        assert self.client is not None
        self.client.insert(
            f"{self.settings.clickhouse_database}.sink_batches", rows,
            column_names=["consumer_group", "topic", "partition", "first_offset", "last_offset"],
        )

    async def _retrying(self, fn: Any) -> None:
        """ClickHouse being down must stall the sink, never skip data: retry with backoff."""
        async for attempt in AsyncRetrying(
            wait=wait_exponential_jitter(initial=0.2, max=10), stop=stop_never,
            retry=retry_if_exception_type(Exception), reraise=True,
            before_sleep=lambda rs: log.warning("ClickHouse write failed, retrying: %s",
                                                rs.outcome.exception() if rs.outcome else None),
        ):
            with attempt:
                await asyncio.to_thread(fn)

    async def _insert(self, tp: TopicPartition, first: int, last: int, records: list[PreparedRecord]) -> None:
        if not records:
            return
        token = f"{self.group}/{tp.topic}/{tp.partition}/{first}-{last}"
        events = [r.event_row for r in records if r.event_row is not None]
        counts = MinuteCounts()
        for r in records:
            counts.add_occurrence(r.occurrence)
        db = self.settings.clickhouse_database
        client = self.client
        assert client is not None

        def write() -> None:
            if events:
                client.insert(f"{db}.error_events", events, column_names=EVENT_COLUMNS,
                              settings={"insert_deduplication_token": token + "/events"})
            client.insert(
                f"{db}.error_occurrences_in", counts.rows(), column_names=OCCURRENCE_COLUMNS,
                settings={"insert_deduplication_token": token + "/counts",
                          "deduplicate_blocks_in_dependent_materialized_views": 1},
            )

        await self._retrying(write)
        ROWS.labels("error_events").inc(len(events))
        self.stats["events"] += len(records)
        self.stats["stored"] += len(events)
