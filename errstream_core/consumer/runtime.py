"""The consumer loop every errstream consumer runs: poll → submit → step.poll → commit.

One task polls; the step does the work; the runtime commits exactly the offsets the
step reports as done (the one commit policy). Rebalances and the poll loop take the
same lock, so a hand-over never interleaves with a flush: partitions are revoked only
between two loop turns, after the step finished or abandoned their batch within a
bounded time. Records are handed to the step contiguously per partition: whatever was
fetched before a rebalance and arrives after it is checked against the next expected
offset, so a record is never skipped (a gap makes the runtime seek back) nor taken
twice (re-fetched records are dropped).

Backpressure: while the step is not accepting, the runtime pauses fetching and keeps
polling (so the group keeps the member). Unreachable servers: the step raises
``InfrastructureError``; the runtime waits with capped exponential backoff and jitter
(the step keeps its batch) and logs once per state change. Shutdown (``stop`` set by
SIGTERM/SIGINT): the step gets ``shutdown_seconds`` to finish its batch, what is done
is committed, the consumer leaves its group, all within the bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import Counter

from errstream_core import heap
from errstream_core.consumer.logs import quiet_library_logs
from errstream_core.consumer.outage import Backoff, InfrastructureError, Outage
from errstream_core.consumer.step import Offsets, Step
from errstream_core.settings import Settings

COMMITS_LOST = Counter("errstream_consumer_commits_lost", "Commits refused after a rebalance (the records are "
                       "replayed idempotently by the next owner)", ["consumer"])

_ASSIGNORS = {"sticky": StickyPartitionAssignor, "range": RangePartitionAssignor,
              "roundrobin": RoundRobinPartitionAssignor}


def consumer_options(settings: Settings, role: str) -> dict[str, Any]:
    """Group-membership options shared by every consumer (see docs/operations.md, 'Hand-overs').

    * session timeout: how long a crashed member keeps its partitions (the broker's minimum is 6 s);
      the heartbeat every second (at most a third of it): members learn of a rebalance at their next
      heartbeat, so this bounds how long a hand-over waits to start;
    * static membership (KIP-345) when ``consumer_instance_id`` is set: a restart within the
      session timeout takes its partitions back without a rebalance;
    * the assignor: aiokafka 0.14 implements the eager protocol only (no cooperative/incremental
      rebalancing). Range by default: deterministic, so a partition returns to the member that had
      it when the same members rejoin (a sink keeps its dedup window). Sticky is opt-in: its join
      metadata carries the generation, so a member rejoining while the group awaits sync counts as
      a metadata change and starts another rebalance (the broker logs "Updating metadata for member
      … during CompletingRebalance"); with frequent membership changes a group looped for minutes.
      Range and round-robin are always offered too, so mixed-version groups agree.
    """
    session = settings.consumer_session_timeout_seconds
    opts: dict[str, Any] = {
        "session_timeout_ms": int(session * 1000),
        "heartbeat_interval_ms": int(min(1.0, session / 3) * 1000),
        "rebalance_timeout_ms": int(max(session, settings.shutdown_seconds + 2) * 1000),
        "partition_assignment_strategy": tuple(dict.fromkeys(
            (_ASSIGNORS[settings.consumer_assignor], RangePartitionAssignor, RoundRobinPartitionAssignor))),
    }
    if settings.consumer_instance_id:
        opts["group_instance_id"] = f"{settings.consumer_instance_id}-{role}"
    return opts


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runtime: ConsumerRuntime) -> None:
        self.runtime = runtime

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.runtime.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.runtime.on_assigned(set(assigned))


class ConsumerRuntime:
    def __init__(self, settings: Settings, step: Step, *, topics: Sequence[str], group: str,
                 max_records: int = 2_000, poll_ms: int = 200, **consumer_kwargs: Any) -> None:
        self.settings = settings
        self.step = step
        self.topics = list(topics)
        self.group = group
        self.max_records = max_records
        self.poll_ms = poll_ms
        self.consumer_kwargs = consumer_kwargs
        self.log = logging.getLogger(f"errstream.{step.name}")
        self.consumer: AIOKafkaConsumer | None = None
        self.lock = asyncio.Lock()
        self.owned: set[TopicPartition] = set()
        self.expected: dict[TopicPartition, int | None] = {}
        self.gap_seen: dict[TopicPartition, int] = {}
        self.paused = False
        self.retry_at = 0.0
        self.backoff = Backoff(initial=0.2, cap=settings.retry_max_seconds)
        self.outages: dict[str, Outage] = {}
        self.stats = {"commits": 0, "commits_lost": 0}

    def outage(self, dependency: str) -> Outage:
        if dependency not in self.outages:
            self.outages[dependency] = Outage(f"{self.step.name}: {dependency}", self.log,
                                              self.settings.outage_report_seconds)
        return self.outages[dependency]

    # -- lifecycle -----------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        quiet_library_logs()
        if not await self._start(stop):
            return
        heap.settle()  # the process is up: what is alive now lives as long as it does
        try:
            await self._loop(stop)
        finally:
            try:
                await asyncio.wait_for(asyncio.shield(self._shutdown()), self.settings.shutdown_seconds + 1)
            except (TimeoutError, asyncio.CancelledError):
                self.log.warning("%s: shutdown did not finish in time; uncommitted work is replayed", self.step.name)

    async def _start(self, stop: asyncio.Event) -> bool:
        """Start the step and the consumer, waiting out unreachable servers (False: stopped meanwhile).

        At start the wait is bounded by ``startup_timeout`` (``errstream --timeout N sink``): a process whose
        servers never answered exits with one line naming what is down, so a supervisor can say so. Once
        running, outages are waited out (``_loop``), logged once per state change.
        """
        started = False
        deadline = time.monotonic() + self.settings.startup_timeout
        # a short start-up wait says nothing until it gives up (then one line); a long one says it is waiting
        quiet_until = time.monotonic() + min(10.0, self.settings.startup_timeout)
        while not stop.is_set():
            try:
                if not started:
                    await self.step.start()
                    started = True
                consumer = AIOKafkaConsumer(
                    **self.settings.kafka_client_kwargs(), group_id=self.group, enable_auto_commit=False,
                    auto_offset_reset="earliest", max_poll_records=self.max_records,
                    **consumer_options(self.settings, self.step.name), **self.consumer_kwargs,
                )
                consumer.subscribe(self.topics, listener=_Listener(self))
                self.consumer = consumer  # the rebalance callbacks may run before start() returns
                try:
                    await consumer.start()
                except BaseException:
                    self.consumer = None
                    await asyncio.wait_for(consumer.stop(), 5)
                    raise
                self.outage("Kafka").ok()
                return True
            except InfrastructureError as exc:
                if time.monotonic() > deadline:
                    raise exc.cause from None
                if time.monotonic() > quiet_until:
                    self.outage(exc.dependency).failed(exc.cause)
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise
                if time.monotonic() > quiet_until:
                    self.outage("Kafka").failed(exc)
            await self._sleep(stop, min(self.backoff.next_delay(), max(0.1, deadline - time.monotonic())))
        if started:
            await self.step.close()
        return False

    async def _shutdown(self) -> None:
        deadline = time.monotonic() + self.settings.shutdown_seconds * 0.6
        async with self.lock:
            await self._revoke(set(self.owned), deadline)
        await self.step.close()
        if self.consumer is not None:
            # leaves the group, so the partitions move at once (not after the session timeout)
            await asyncio.wait_for(self.consumer.stop(), max(1.0, self.settings.shutdown_seconds * 0.3))

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass

    # -- the loop ------------------------------------------------------------
    async def _loop(self, stop: asyncio.Event) -> None:
        consumer = self.consumer
        assert consumer is not None
        while not stop.is_set():
            wait = self.retry_at - time.monotonic()
            if wait > 0:
                await self._sleep(stop, min(wait, 1.0))
                continue
            self._pause(not self.step.accepting())
            batch = await consumer.getmany(timeout_ms=self.poll_ms, max_records=self.max_records)
            if stop.is_set():
                for tp, records in batch.items():  # not handed to the step: read them again next time
                    if records and tp in self.owned:
                        consumer.seek(tp, records[0].offset)
                break
            async with self.lock:
                for tp, records in batch.items():
                    if records:
                        await self._take(tp, records)
                try:
                    done = await self.step.poll()
                except InfrastructureError as exc:
                    self._failed(exc)
                    continue
                if done:
                    self._recovered()
                    await self._commit(done)

    def _pause(self, pause: bool) -> None:
        consumer = self.consumer
        assert consumer is not None
        if pause and not self.paused:
            consumer.pause(*consumer.assignment())
        elif not pause and self.paused:
            consumer.resume(*consumer.assignment())
        self.paused = pause

    async def _take(self, tp: TopicPartition, records: list[Any]) -> None:
        consumer = self.consumer
        assert consumer is not None
        if tp not in self.owned:
            if tp in consumer.assignment():  # assigned, the step not told yet: read them again then
                consumer.seek(tp, records[0].offset)
            return  # revoked meanwhile: the new owner reads them
        expected = self.expected.get(tp)
        if expected is not None:
            if records[-1].offset < expected:
                return  # fetched again after a rebalance: the step has them already
            if records[0].offset < expected:
                records = [r for r in records if r.offset >= expected]
            elif records[0].offset > expected and self.gap_seen.get(tp) != expected:
                # Something between was not handed over (fetched before a rebalance, dropped by the
                # client): read from where the step is. A second gap at the same place is real
                # (compaction, transaction markers) and accepted.
                self.gap_seen[tp] = expected
                consumer.seek(tp, expected)
                return
        await self.step.submit(tp, records)
        self.expected[tp] = records[-1].offset + 1

    def _failed(self, exc: InfrastructureError) -> None:
        self.outage(exc.dependency).failed(exc.cause)
        self.retry_at = time.monotonic() + self.backoff.next_delay()
        consumer = self.consumer
        assert consumer is not None
        for tp, offset in exc.rewind.items():
            if tp in self.owned:
                consumer.seek(tp, offset)
                self.expected[tp] = offset

    def _recovered(self) -> None:
        self.backoff.reset()
        for outage in self.outages.values():
            outage.ok()

    async def _commit(self, offsets: Offsets) -> None:
        consumer = self.consumer
        assert consumer is not None
        owned = {tp: OffsetAndMetadata(o, "") for tp, o in offsets.items() if tp in self.owned}
        if not owned:
            return
        try:
            await asyncio.wait_for(consumer.commit(owned), self.settings.consumer_session_timeout_seconds)
            self.stats["commits"] += 1
            self.outage("Kafka").ok()
        except (CommitFailedError, IllegalStateError) as exc:
            self.stats["commits_lost"] += 1
            COMMITS_LOST.labels(self.step.name).inc()
            self.log.warning("%s: commit refused (%s); the batch log and idempotent writes make the replay "
                             "exact", self.step.name, type(exc).__name__)
        except (KafkaError, TimeoutError) as exc:
            self.outage("Kafka").failed(exc)

    # -- rebalances ----------------------------------------------------------
    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        deadline = time.monotonic() + min(self.settings.shutdown_seconds * 0.6,
                                          self.settings.consumer_session_timeout_seconds / 2)
        async with self.lock:
            await self._revoke(revoked & self.owned, deadline)

    async def _revoke(self, revoked: set[TopicPartition], deadline: float) -> None:
        if not revoked:
            return
        try:
            done = await asyncio.wait_for(self.step.revoke(revoked, deadline),
                                          max(0.1, deadline - time.monotonic()))
        except (InfrastructureError, TimeoutError) as exc:
            self.log.warning("%s: batch of %s abandoned on hand-over (%s); the next owner replays it",
                             self.step.name, sorted(tp.partition for tp in revoked), exc)
            done = {}
        if done:
            await self._commit(done)
        self.owned -= revoked
        for tp in revoked:
            self.expected.pop(tp, None)
            self.gap_seen.pop(tp, None)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.consumer
        assert consumer is not None
        async with self.lock:
            committed: dict[TopicPartition, int | None] = {}
            for tp in assigned:
                try:
                    c = await consumer.committed(tp)
                except KafkaError:
                    c = None
                committed[tp] = c if c is not None and c >= 0 else None
            await self.step.assign(assigned, committed)
            self.owned |= assigned
            for tp in assigned:
                self.expected[tp] = committed[tp]
                if committed[tp] is not None:
                    consumer.seek(tp, committed[tp])  # type: ignore[arg-type]
            if self.paused:
                consumer.pause(*assigned)
