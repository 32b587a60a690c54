"""Input positions for ``detect-issues``: a checkpoint per partition, and re-reading what faust skipped.

faust's consumer (faust-streaming 0.15.3) can hand an agent a partition's
records with a hole after a rebalance (records fetched before it are cleared
from the agent's queue and not always fetched again). Then either faust
commits past the hole (when it knows no committed offset: the bundles are
lost) or it never commits that partition again (its acks have a gap at the
head: the lag grows for good). The rebalance test showed both. ``detect-issues`` keeps
the last bundle offset it applied per partition in its own table (the key
``checkpoint_key(p)`` lives on changelog partition *p*, written after the
batch's states, so it is recovered with them), and reads any hole between the
checkpoint and the records faust delivers straight from the topic with a
plain consumer, then marks the hole done in faust's consumer (as faust does for
the holes compaction leaves) so that its commits move on. The by-fingerprint topic is written by an idempotent,
non-transactional producer and never compacted, so its offsets have no holes
of their own.
"""

from __future__ import annotations

import logging
from functools import cache

from aiokafka import AIOKafkaConsumer, TopicPartition

from errstream_core.settings import Settings
from stream_processors.detection.context import partition_of

log = logging.getLogger("errstream.detect")

CHECKPOINT_PREFIX = b"\x00checkpoint:"  # no fingerprint starts with a NUL byte


@cache
def checkpoint_key(partition: int, partitions: int) -> bytes:
    """A table key that the key partitioner puts on ``partition`` (the first of a fixed sequence)."""
    for i in range(1_000_000):
        key = CHECKPOINT_PREFIX + str(i).encode()
        if partition_of(key, partitions) == partition:
            return key
    raise ValueError(f"no checkpoint key for partition {partition} of {partitions}")


async def read_hole(settings: Settings, topic: str, partition: int, start: int, end: int) -> list[tuple[int, bytes]]:
    """(offset, value) of the records ``start`` ≤ offset < ``end`` of one partition."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        out: list[tuple[int, bytes]] = []
        while not out or out[-1][0] < end - 1:
            batch = await consumer.getmany(tp, timeout_ms=1_000, max_records=1_000)
            records = batch.get(tp, [])
            if not records and await consumer.position(tp) >= end:
                break
            out.extend((r.offset, r.value) for r in records if r.offset < end and r.value is not None)
            if records and records[-1].offset >= end - 1:
                break
        log.warning("detect-issues re-read %d bundles at %s/%d offsets %d–%d that faust skipped", len(out), topic,
                    partition, start, end - 1)
        return out
    finally:
        await consumer.stop()
