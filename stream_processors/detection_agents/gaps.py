"""Input positions for detection's agents: a checkpoint per partition, and re-reading what faust skipped.

faust's consumer (faust-streaming 0.15.3) can hand an agent a partition's
records with a hole after a rebalance (records fetched before it are cleared
from the agent's queue and not always fetched again). Then either faust
commits past the hole (when it knows no committed offset: the records are
lost) or it never commits that partition again (its acks have a gap at the
head: the lag grows for good). The rebalance test showed both, for every
agent: ``detect-issues`` lost signal bundles, ``detect-services`` per-service
minute counts. Each agent keeps the last input offset it applied per partition
in its own table (the key ``checkpoint_key(p)`` lives on changelog partition
*p*, written after the batch's states, so it is recovered with them), and
reads any hole between the checkpoint and the records faust delivers straight
from the topic with a plain consumer, then marks the hole done in faust's
consumer (as faust does for the holes compaction leaves) so that its commits
move on. Detection's internal topics are written by idempotent,
non-transactional producers and never compacted, so their offsets have no
holes of their own. Re-read records are applied like delivered ones: the
states are idempotent (``detection_rules/replay.py``), so a checkpoint older than
its states (a crash between the two writes) only re-reads what changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import cache

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP, EventT, TopicT
from prometheus_client import Counter

from errstream_core.settings import Settings
from stream_processors.detection_agents.context import SKIPPED, Detection, KeyPartitionedTable, partition_of

log = logging.getLogger("errstream.detect")

CHECKPOINT_PREFIX = b"\x00checkpoint:"  # no fingerprint, service or trace id starts with a NUL byte

REREAD = Counter("errstream_detect_reread", "Records faust skipped after a rebalance that detection read again "
                 "from its input topic, by agent", ["agent"])

Record = tuple[int, bytes | None, bytes]  # offset, key, value of one input record
Applier = Callable[[dict[int, tuple[list[Record], int | None]]], Awaitable[None]]

TAIL_IDLE = 3.0  # seconds without a batch before an agent looks for records faust read but never delivered


@cache
def checkpoint_key(partition: int, partitions: int) -> bytes:
    """A table key that the key partitioner puts on ``partition`` (the first of a fixed sequence)."""
    for i in range(1_000_000):
        key = CHECKPOINT_PREFIX + str(i).encode()
        if partition_of(key, partitions) == partition:
            return key
    raise ValueError(f"no checkpoint key for partition {partition} of {partitions}")


def is_checkpoint(key: bytes) -> bool:
    """True for a checkpoint's table key (tables that list their keys must leave these alone)."""
    return key.startswith(CHECKPOINT_PREFIX)


def holes(last: int | None, offsets: Iterable[int]) -> tuple[list[tuple[int, int]], int | None]:
    """The ranges ``[start, end)`` missing between the checkpoint ``last`` and the delivered ``offsets`` (in the
    order delivered), and the checkpoint after them. Offsets at or before the checkpoint (a replay) are no
    hole; ``None`` (nothing known) finds none."""
    found: list[tuple[int, int]] = []
    for offset in offsets:
        if last is not None and offset > last + 1:
            found.append((last + 1, offset))
        last = offset if last is None else max(last, offset)
    return found, last


async def read_records(settings: Settings, topic: str, partition: int, start: int, end: int,
                       agent: str = "detect-issues") -> list[Record]:
    """(offset, key, value) of the records ``start`` ≤ offset < ``end`` of one partition."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = min(end, int((await consumer.end_offsets([tp]))[tp]))  # never wait for records not yet written
        out: list[Record] = []
        if start >= end:
            return out
        consumer.seek(tp, start)
        while not out or out[-1][0] < end - 1:
            batch = await consumer.getmany(tp, timeout_ms=1_000, max_records=1_000)
            records = batch.get(tp, [])
            if not records and await consumer.position(tp) >= end:
                break
            out.extend((r.offset, r.key, r.value) for r in records if r.offset < end and r.value is not None)
            if records and records[-1].offset >= end - 1:
                break
        REREAD.labels(agent).inc(len(out))
        log.warning("%s re-read %d records at %s/%d offsets %d–%d that faust skipped", agent, len(out), topic,
                    partition, start, end - 1)
        return out
    finally:
        await consumer.stop()


async def first_to_apply(settings: Settings, group: str, topic: str, partition: int) -> int:
    """Where an agent without a checkpoint for a partition starts: its group's committed offset (input applied
    before checkpoints existed) or, for a partition no member ever committed, the partition's first offset.
    faust can skip the first records of a partition too (seen on a three-broker cluster: a rebalance right
    at the start lost by-service offset 0), so the first delivered record is no proof of a start."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=group, enable_auto_commit=False)
    await consumer.start()  # a group id without subscribe(): reads the group's offsets, joins nothing
    try:
        tp = TopicPartition(topic, partition)
        committed = await consumer.committed(tp)
        if committed is not None:
            return int(committed)
        return int((await consumer.beginning_offsets([tp]))[tp])
    finally:
        await consumer.stop()


class Positions:
    """One agent's checkpoints: which input offsets of each partition it has applied, kept in its own table.

    Per batch: ``owned_partitions`` groups the delivered events by partition (leaving revoked partitions to
    their new owner), ``records`` gives a partition's records to apply in offset order — the holes read
    from the topic before the delivered records that follow them — and ``store`` writes the new checkpoints,
    after the batch's states and in the same table, so the changelog holds them with those states.
    """

    def __init__(self, detection: Detection, topic: TopicT, table: KeyPartitionedTable, agent: str) -> None:
        self.d, self.topic, self.table, self.agent = detection, topic, table, agent
        self.lock = asyncio.Lock()  # one batch at a time: delivered records or a tail read by the timer
        self.last_batch = time.monotonic()

    async def delivered(self, events: Iterable[EventT]) -> dict[int, tuple[list[Record], int | None]]:
        """Per owned partition: the records to apply for a delivered batch (holes first) and the checkpoint."""
        self.last_batch = time.monotonic()
        return {partition: await self.records(partition, part_events)
                for partition, part_events in self.owned_partitions(events).items()}

    async def tails(self) -> dict[int, tuple[list[Record], int | None]]:
        """Per owned partition: records faust read but never delivered, when nothing follows them.

        A hole is found when a later record arrives; a hole at the end of a partition that goes quiet would
        wait for that record for ever (a new issue's alert with it). So when the agent has had no batch for
        ``TAIL_IDLE`` seconds and no rebalance is running, every owned partition whose consumer read offset
        is past the checkpoint is read up to that offset here.
        """
        app = self.d.app
        if time.monotonic() - self.last_batch < TAIL_IDLE or app.rebalancing or app.in_recovery:
            return {}
        read_offsets = app.consumer._read_offset  # type: ignore[attr-defined]  # noqa: SLF001
        name = self.topic.get_topic_name()
        found: dict[int, tuple[list[Record], int | None]] = {}
        for partition in self.d.owned(self.topic):
            last = self.table.get(checkpoint_key(partition, self.d.partitions))
            read = read_offsets.get(TP(name, partition))
            if not isinstance(last, int) or read is None or read <= last:
                continue
            records = await read_records(self.d.settings, name, partition, last + 1, read + 1, agent=self.agent)
            if records:
                await mark_done(self.d, TP(name, partition), last + 1, records[-1][0] + 1)
                found[partition] = records, records[-1][0]
        self.last_batch = time.monotonic()
        return found

    def owned_partitions(self, events: Iterable[EventT]) -> dict[int, list[EventT]]:
        """The batch's events by partition, for the partitions this worker still owns."""
        owned = self.d.owned(self.topic)
        by_partition: dict[int, list[EventT]] = {}
        for event in events:
            by_partition.setdefault(event.message.partition, []).append(event)
        for partition in [p for p in by_partition if p not in owned]:
            revoked = by_partition.pop(partition)
            SKIPPED.labels("revoked").inc(len(revoked))
            log.info("%s leaves %d records of revoked partition %d to its new owner", self.agent, len(revoked),
                     partition)
        return by_partition

    async def records(self, partition: int, events: list[EventT]) -> tuple[list[Record], int | None]:
        """The partition's records to apply, in offset order, and its checkpoint after them."""
        ckey = checkpoint_key(partition, self.d.partitions)
        last = self.table.get(ckey)
        name = self.topic.get_topic_name()
        if not isinstance(last, int):
            last = await first_to_apply(self.d.settings, self.d.app.conf.id, name, partition) - 1
        delivered = [(e.message.offset, e.key, e.value) for e in events]
        found, checkpoint = holes(last, [offset for offset, _, _ in delivered])
        if not found:
            return delivered, checkpoint
        reread: list[Record] = []
        for start, end in found:
            reread.extend(await read_records(self.d.settings, name, partition, start, end, agent=self.agent))
            # faust never acks what it did not deliver, and then stops committing this partition (its
            # committed offset would stay before the hole for good): tell it the hole is done.
            await mark_done(self.d, TP(name, partition), start, end)
        return sorted(reread + delivered, key=lambda record: record[0]), checkpoint

    def store(self, checkpoints: dict[int, int]) -> None:
        """Write the batch's checkpoints (partition → last offset applied); call after its states."""
        for partition, offset in checkpoints.items():
            self.table[checkpoint_key(partition, self.d.partitions)] = offset


async def mark_done(detection: Detection, tp: TP, start: int, end: int) -> None:
    """Tell faust's consumer that offsets ``start`` ≤ offset < ``end`` of ``tp`` need no ack (faust's own
    mechanism for the holes compaction leaves), so that its commits move past them."""
    await detection.app.consumer._add_gap(tp, start, end - 1)  # type: ignore[attr-defined]  # noqa: SLF001


def follow_tails(detection: Detection, positions: Positions, apply: Applier) -> None:
    """A timer that applies, through the agent's own ``apply``, the tails ``Positions.tails`` finds."""

    @detection.app.timer(interval=TAIL_IDLE / 2, name=f"{positions.agent}-tails")
    async def apply_tails() -> None:
        async with positions.lock:
            found = await positions.tails()
            if found:
                await apply(found)
