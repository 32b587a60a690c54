"""Kafka processed events → ClickHouse, exactly once: a step on the consumer runtime.

At-least-once consumption plus idempotent storage gives exact counts even when the
sink is killed with SIGKILL, its group rebalances, or it is reset and replayed:

1. Records are buffered per partition (raw, contiguous: the runtime guarantees it);
   a batch is cut by size or age.
2. Before inserting offsets ``[a, b]`` of a partition, the sink records the boundaries
   in ClickHouse ``sink_batches`` — a write-ahead batch log.
3. It inserts with ``insert_deduplication_token = group/topic/partition/a-b`` (+ the
   table), and the runtime commits ``b + 1``.

Whoever replays those offsets later (the same sink after a crash between 3 and the
commit, another sink after a rebalance, or a deliberate offset reset) loads the log
before cutting the partition's first batch, cuts exactly the same batches, and
ClickHouse discards the repeated blocks by token (within the tables'
``non_replicated_deduplication_window``). Duplicates created upstream (a worker that
re-processed a batch) have other offsets, so the sink also skips event ids already
seen within the last ``sink_dedup_lookback`` offsets of the partition — a window it
re-reads from Kafka (headers only) when it takes a partition over from someone else.

A cut batch is frozen until it is written: while ClickHouse is down the same batch is
retried (the runtime backs off), so the batch log never holds two different cuts of
the same offsets. A hand-over runs between two loop turns (the runtime's lock): the
batch is written and committed within the hand-over budget, or abandoned whole — the
new owner replays it through the batch log. Records that cannot be read, rows that
cannot be built and rows ClickHouse refuses are dead-lettered one by one (a failing
insert is split in halves until the offending row is found); the partition moves on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from clickhouse_connect.driver.client import Client
from prometheus_client import Counter

from errstream_core.consumer import ConsumerRuntime, DeadLetters, InfrastructureError, Step, start_producer
from errstream_core.consumer.dead_letters import describe
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from schemas.dead_letter import DeadLetter, Reason
from sinks.clickhouse import storage
from sinks.clickhouse.client import connect
from sinks.clickhouse.flush_plan import Member, Plan, borrow, flush_token, members_text, parse_members
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.rows import (
    EVENT_COLUMNS,
    OCCURRENCE_COLUMNS,
    RECOVERY_COLUMNS,
    MinuteCounts,
    Occurrence,
    RecoveryCounts,
    RowError,
    counted_only,
    event_row,
    occurrence,
)

log = logging.getLogger("errstream.sink")

DATETIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
DATETIME_MAX = datetime(2106, 2, 7, tzinfo=UTC)

ROWS = Counter("errstream_sink_rows", "Rows written to ClickHouse", ["table"])
SKIPPED = Counter("errstream_sink_skipped", "Records not written, by reason", ["reason"])


@dataclass
class _Item:
    partition: int
    offset: int
    value: bytes
    row: list[Any] | None  # the error_events row; None when the event was sampled away
    occurrence: Occurrence  # what the event adds to the counts, built once


@dataclass
class _Partition:
    start: int | None  # committed offset: when assigned, then after each batch (None: nothing committed yet)
    loaded: bool = False
    plans: deque[Plan] = field(default_factory=deque)  # recorded batches still to replay
    seen: OrderedDict[str, int] = field(default_factory=OrderedDict)
    records: list[Any] = field(default_factory=list)
    started: float = 0.0  # wall-clock time its oldest buffered record was written (``_written``)

    def remember(self, event_id: str, offset: int, lookback: int) -> bool:
        """True when the id is new within the lookback window of offsets."""
        while self.seen:
            oldest_offset = next(iter(self.seen.values()))
            if oldest_offset >= offset - lookback:
                break
            self.seen.popitem(last=False)
        if event_id in self.seen:
            return False
        self.seen[event_id] = offset
        return True


@dataclass
class _Batch:
    tp: TopicPartition
    first: int
    last: int
    records: list[Any]
    recorded: bool  # its boundaries are in sink_batches
    flush: str = ""  # the recorded flush's members ("" : this batch alone)
    borrowed: _Partition | None = None  # a member this sink does not hold: read back, with its own dedup window
    items: list[_Item] | None = None
    dead: list[DeadLetter] = field(default_factory=list)


def _written(record: Any) -> float:
    """When the worker wrote the record (its broker timestamp), never later than now.

    The window counts from there, not from when this sink took the record: records that arrived while a
    flush was being written have waited that long already (about 0.2 s at 5,000 events/s), and a window
    counted from their hand-over added it to their latency.
    """
    now = time.time()
    ts = getattr(record, "timestamp", None)
    return min(now, ts / 1000) if isinstance(ts, int) and ts > 0 else now


class ClickHouseSink(Step):
    name = "sink"

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client
        self.topic = settings.topic_processed
        self.group = settings.sink_group
        self.parts: dict[TopicPartition, _Partition] = {}
        self.retired: dict[TopicPartition, tuple[int, OrderedDict[str, int]]] = {}
        self.pending: list[_Batch] | None = None
        self.producer: AIOKafkaProducer | None = None
        self.dead_letters = DeadLetters("sink", settings.topic_dlq)
        self.stats = {"batches": 0, "events": 0, "stored": 0, "duplicates": 0, "invalid": 0}

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        try:
            if self.client is None:
                self.client = await asyncio.to_thread(connect, self.settings)
            await asyncio.to_thread(migrate, self.settings, self.client)
        except Exception as exc:
            self.client = None
            raise InfrastructureError("ClickHouse", exc) from exc
        try:
            await ensure_topics(self.settings, timeout=self.settings.startup_timeout)
            if self.producer is None:
                self.producer = self.dead_letters.producer = await start_producer(self.settings)
        except KafkaError as exc:
            raise InfrastructureError("Kafka", exc) from exc

    async def close(self) -> None:
        if self.producer is not None:
            await asyncio.wait_for(self.producer.stop(), 3)

    async def run(self, stop: asyncio.Event) -> None:
        runtime = ConsumerRuntime(
            self.settings, self, topics=[self.topic], group=self.group, max_records=10_000, poll_ms=100,
            fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await runtime.run(stop)

    # -- partitions ----------------------------------------------------------
    async def assign(self, partitions: set[TopicPartition], committed: dict[TopicPartition, int | None]) -> None:
        for tp in partitions:
            part = _Partition(start=committed.get(tp))
            retired = self.retired.pop(tp, None)
            if retired is not None and retired[0] == part.start:
                part.seen = retired[1]  # ours until now and nobody moved it: the window is still right
            self.parts[tp] = part

    async def revoke(self, partitions: set[TopicPartition], deadline: float) -> dict[TopicPartition, int]:
        done: dict[TopicPartition, int] = {}
        try:
            done = await self.poll(force=True)
            if self.pending is None and any(self.parts[tp].records for tp in partitions if tp in self.parts):
                done.update(await self.poll(force=True))  # the batch after a replayed one
        except InfrastructureError as exc:
            log.warning("sink: hand-over of %s without writing its batch (%s); the next owner replays it",
                        sorted(tp.partition for tp in partitions), exc)
        finally:
            # also when the runtime's hand-over budget cancelled us: nothing of these partitions survives
            self._forget(partitions, done)
        return done

    def _forget(self, partitions: set[TopicPartition], done: dict[TopicPartition, int]) -> None:
        if self.pending is not None:
            self.pending = [b for b in self.pending if b.tp not in partitions]
            for b in self.pending:  # a partition still owned keeps its cut batch (and its plan) for later
                if b.borrowed is not None:
                    continue
                part = self.parts[b.tp]
                part.records[:0] = b.records
                if b.recorded:
                    part.plans.appendleft(Plan(b.first, b.last, b.flush))
            self.pending = None
        for tp in partitions:
            gone = self.parts.pop(tp, None)
            if gone is None:
                continue
            end = done.get(tp, gone.start)
            if not gone.records and end is not None:
                self.retired[tp] = (end, gone.seen)

    async def _load(self, tp: TopicPartition, part: _Partition) -> None:
        start = part.start or 0
        rows = await storage.call(lambda: self._client.query(
            f"SELECT first_offset, last_offset, flush FROM {self.settings.clickhouse_database}.sink_batches FINAL "
            "WHERE consumer_group = {g:String} AND topic = {t:String} AND partition = {p:UInt32} "
            "AND last_offset >= {o:UInt64} ORDER BY first_offset",
            parameters={"g": self.group, "t": tp.topic, "p": tp.partition, "o": start},
        ).result_rows)
        part.plans = deque(Plan(int(a), int(b), str(f)) for a, b, f in rows)
        if part.plans:
            log.info("%s replays %d recorded batch(es) from offset %d", tp, len(part.plans), start)
        if start > 0 and not part.seen:
            try:
                await self._seed_seen(tp, part, start)
            except KafkaError as exc:
                raise InfrastructureError("Kafka", exc) from exc
        part.loaded = True

    async def _seed_seen(self, tp: TopicPartition, part: _Partition, committed: int) -> None:
        lookback = self.settings.sink_dedup_lookback
        await borrow(self.settings, tp, committed, committed - 1, lookback,
                     lambda eid, offset: part.remember(eid, offset, lookback))

    async def _borrow(self, b: _Batch) -> None:
        """Read a member of a replayed flush that this sink does not hold, with the owner's dedup window."""
        window = b.borrowed
        assert window is not None
        lookback = self.settings.sink_dedup_lookback
        try:
            b.records = await borrow(self.settings, b.tp, b.first, b.last, lookback,
                                     lambda eid, offset: window.remember(eid, offset, lookback))
        except KafkaError as exc:
            raise InfrastructureError("Kafka", exc) from exc

    # -- consuming -----------------------------------------------------------
    async def submit(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        part = self.parts[tp]
        if not part.records:
            part.started = _written(records[0])
        part.records.extend(records)

    def accepting(self) -> bool:
        return sum(len(p.records) for p in self.parts.values()) < 2 * self.settings.sink_batch_rows

    def _due(self) -> bool:
        if sum(len(p.records) for p in self.parts.values()) >= self.settings.sink_batch_rows:
            return True
        now = time.time()
        return any(p.records and now - p.started >= self.settings.sink_batch_seconds for p in self.parts.values())

    async def poll(self, force: bool = False) -> dict[TopicPartition, int]:
        if self.pending is None:
            for tp, part in self.parts.items():
                if not part.loaded:
                    await self._load(tp, part)
            if not force and not self._due():
                return {}
            self.pending = self._cut()
            if not self.pending:
                self.pending = None
                return {}
        batches = self.pending
        await self._write(batches)
        self.pending = None
        ours = [b for b in batches if b.borrowed is None]
        for b in ours:
            if b.tp in self.parts:
                self.parts[b.tp].start = b.last + 1  # what the runtime commits now
        return {b.tp: b.last + 1 for b in ours}

    def _cut(self) -> list[_Batch]:
        """The next flush: a recorded one replayed whole, else what every partition has buffered."""
        fresh: list[TopicPartition] = []
        for tp, part in self.parts.items():
            if not part.records:
                continue
            first_offset = part.records[0].offset
            while part.plans and part.plans[0].last < first_offset:
                part.plans.popleft()  # already behind us
            if not (part.plans and first_offset >= part.plans[0].first):
                fresh.append(tp)
            elif part.records[-1].offset >= part.plans[0].last:
                return self._replay(tp, part.plans[0])
            # else: a recorded batch is flushed only whole: wait for the rest
        out = []
        for tp in sorted(fresh, key=lambda t: t.partition):
            part = self.parts[tp]
            last = part.records[-1].offset
            if part.plans:  # stop before the next recorded batch
                last = min(last, part.plans[0].first - 1)
            out.append(self._take(tp, part.records[0].offset, last, recorded=False))
        return out

    def _take(self, tp: TopicPartition, first: int, last: int, recorded: bool, flush: str = "") -> _Batch:
        part = self.parts[tp]
        n = next((i for i, r in enumerate(part.records) if r.offset > last), len(part.records))
        taken, part.records = part.records[:n], part.records[n:]
        if part.records:
            part.started = _written(part.records[0])
        if not recorded:
            first, last = taken[0].offset, taken[-1].offset
        return _Batch(tp, first, last, taken, recorded, flush)

    def _replay(self, tp: TopicPartition, plan: Plan) -> list[_Batch]:
        """A recorded flush, whole: members buffered here from the buffer, the others read back (``_write``)."""
        try:
            members = parse_members(plan.flush) if plan.flush else [(tp.partition, plan.first, plan.last)]
        except ValueError:
            log.warning("%s: unreadable flush %r in the batch log; replaying the batch alone", tp, plan.flush[:200])
            members = [(tp.partition, plan.first, plan.last)]
        if (tp.partition, plan.first, plan.last) not in members:
            members = [(tp.partition, plan.first, plan.last)]
        batches = []
        for p, first, last in members:
            mtp = TopicPartition(tp.topic, p)
            part = self.parts.get(mtp)
            if (part is not None and part.records and part.plans and part.plans[0] == Plan(first, last, plan.flush)
                    and part.records[0].offset >= first and part.records[-1].offset >= last):
                part.plans.popleft()
                batches.append(self._take(mtp, first, last, recorded=True, flush=plan.flush))
            else:
                batches.append(_Batch(mtp, first, last, [], recorded=True, flush=plan.flush, borrowed=_Partition(None)))
        return batches

    # -- writing -------------------------------------------------------------
    @property
    def _client(self) -> Client:
        assert self.client is not None
        return self.client

    async def _record(self, batches: list[_Batch]) -> None:
        """Write a new flush's members to the batch log (before its rows: a replay must find the same cut)."""
        new = [b for b in batches if not b.recorded]
        if not new:
            return
        flush = members_text(self._members(new)) if len(new) > 1 else ""
        rows = [[self.group, b.tp.topic, b.tp.partition, b.first, b.last, flush] for b in new]
        await storage.insert(self._client, f"{self.settings.clickhouse_database}.sink_batches", rows,
                             ["consumer_group", "topic", "partition", "first_offset", "last_offset", "flush"])
        for b in new:
            b.recorded, b.flush = True, flush

    async def _write(self, batches: list[_Batch]) -> None:
        """Record a new flush in the batch log, then write it: one insert per table for all its batches."""
        await self._record(batches)
        for b in batches:
            if b.borrowed is not None and b.items is None:
                await self._borrow(b)
            if b.items is None:
                b.items = self._prepare(b)
        await self._store(batches)
        for b in batches:
            if b.borrowed is None:  # a borrowed member's owner reports its own dead letters
                for dl in b.dead:
                    await self.dead_letters.publish(dl)
            b.dead = []
        await self.dead_letters.flush()
        self.stats["batches"] += 1

    @staticmethod
    def _members(batches: Sequence[_Batch]) -> list[Member]:
        return sorted((b.tp.partition, b.first, b.last) for b in batches)

    def _refuse(self, b: _Batch, m: Any, stage: str, reason: Reason, detail: str) -> None:
        self.stats["invalid"] += 1
        SKIPPED.labels(stage).inc()
        b.dead.append(DeadLetter.for_payload(m.value or b"", reason=reason, detail=detail, source_topic=b.tp.topic,
                                             partition=b.tp.partition, offset=m.offset, stage=stage))

    def _prepare(self, b: _Batch) -> list[_Item]:
        """Dedup, decode and build rows record by record: a record that fails is dead-lettered alone."""
        part = b.borrowed or self.parts[b.tp]
        lookback = self.settings.sink_dedup_lookback
        items = []
        for m in b.records:
            eid = next((v for k, v in m.headers or () if k == "event_id"), None)
            if eid is not None and not part.remember(eid.decode(errors="replace"), m.offset, lookback):
                self.stats["duplicates"] += 1
                SKIPPED.labels("duplicate").inc()
                continue
            try:
                record = counted_only(m.value or b"")
                if record is None:
                    record = orjson.loads(m.value)
                    record["event"]["event_id"]  # noqa: B018 - shape check
            except Exception as exc:  # noqa: BLE001 - any failure is this record's
                self._refuse(b, m, "sink-decode", "processing_error", f"sink could not read record: {describe(exc)}")
                continue
            try:
                row = event_row(record) if record.get("stored", True) else None
                counted = occurrence(record)  # also checks every count column's value
                when = counted.ts
            except Exception as exc:  # noqa: BLE001
                # RowError: a value the columns cannot hold (the worker's bounds should have caught it)
                reason: Reason = "unstorable" if isinstance(exc, RowError) else "processing_error"
                self._refuse(b, m, "sink-rows", reason, f"sink could not build its rows: {describe(exc)}")
                continue
            if not DATETIME_MIN <= when < DATETIME_MAX:
                # The counts' minute is a DateTime: checked here so the record is neither stored nor counted
                # (the insert split below would find it too, but only after its raw row went in).
                self._refuse(b, m, "sink-rows", "unstorable",
                             f"event time {when.isoformat()} is outside what ClickHouse DateTime holds (1970-2106)")
                continue
            items.append(_Item(b.tp.partition, m.offset, m.value, row, counted))
        return items

    async def _store(self, batches: list[_Batch]) -> None:
        """One insert per table for the whole flush, under the flush's token (``flush_plan``)."""
        members = self._members(batches)
        token = flush_token(self.group, batches[0].tp.topic, members)
        db = self.settings.clickhouse_database
        client = self._client
        alone = len(members) == 1
        of_partition = {b.tp.partition: b for b in batches}
        items = [it for b in batches for it in b.items or ()]

        def aggregated(table: str, rows_of: type[MinuteCounts] | type[RecoveryCounts],
                       columns: Sequence[str]) -> Callable[[Sequence[_Item], str], Awaitable[None]]:
            async def write(items: Sequence[_Item], tok: str) -> None:
                rows = rows_of()
                for it in items:
                    rows.add_occurrence(it.occurrence)
                await storage.insert(client, f"{db}.{table}", rows.rows(), columns, {
                    "insert_deduplication_token": tok, "deduplicate_blocks_in_dependent_materialized_views": 1})
            return write

        counts = aggregated("error_occurrences_in", MinuteCounts, OCCURRENCE_COLUMNS)
        recoveries = aggregated("recovery_occurrences_in", RecoveryCounts, RECOVERY_COLUMNS)

        async def events(items: Sequence[_Item], tok: str) -> None:
            await storage.insert(client, f"{db}.error_events", [it.row for it in items if it.row is not None],
                                 EVENT_COLUMNS, {"insert_deduplication_token": tok,
                                                 "deduplicate_blocks_in_dependent_materialized_views": 1})

        refused: dict[str, dict[tuple[int, int], storage.RowError]] = {"counts": {}, "events": {}, "recovery": {}}

        def refuse(kind: str) -> Callable[[_Item, storage.RowError], Awaitable[None]]:
            async def note(it: _Item, exc: storage.RowError) -> None:
                refused[kind][(it.partition, it.offset)] = exc
            return note

        def key(it: _Item) -> object:  # in the halves' tokens: offsets alone keep a one-partition flush's tokens
            return it.offset if alone else f"{it.partition}:{it.offset}"

        # Raw rows first, counts second: a reader who sees an event counted finds its raw row too.
        stored = [it for it in items if it.row is not None]
        await storage.bisect(stored, token + "/events", key, events, refuse("events"))
        await storage.bisect(items, token + "/counts", key, counts, refuse("counts"))
        not_counted, not_stored, not_recovered = refused["counts"], refused["events"], refused["recovery"]
        recovering = [it for it in items
                      if it.occurrence.recovery is not None and (it.partition, it.offset) not in not_counted]
        if recovering:  # a flush without recovery events writes nothing more
            await storage.bisect(recovering, token + "/recovery", key, recoveries, refuse("recovery"))
        for it in items:
            at, b = (it.partition, it.offset), of_partition[it.partition]
            if at in not_counted:
                self._refuse(b, it, "sink-insert", "unstorable",
                             f"ClickHouse refused the event's counts: {not_counted[at]}")
            elif at in not_stored:
                self._refuse(b, it, "sink-insert", "unstorable",
                             f"counted, but ClickHouse refused the raw event: {not_stored[at]}")
            elif at in not_recovered:
                self._refuse(b, it, "sink-insert", "unstorable",
                             f"counted, but ClickHouse refused its recovery counts: {not_recovered[at]}")
        ours = [it for it in items if of_partition[it.partition].borrowed is None]
        kept = sum(1 for it in ours if it.row is not None and (it.partition, it.offset) not in not_stored)
        ROWS.labels("error_events").inc(kept)
        self.stats["events"] += sum(1 for it in ours if (it.partition, it.offset) not in not_counted)
        self.stats["stored"] += kept
