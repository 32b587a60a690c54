"""What one sink flush covers, how it is named, and how any sink can rebuild it.

A flush writes the batches of every partition the sink has buffered in one insert per table (raw events,
counts, recovery counts): ClickHouse's cost of an insert is mostly fixed (a part per table and per
materialized view), so four partitions written one by one cost about four times one write of all of them
(docs/performance.md, "One insert per table per flush").

The batch log (``sink_batches``) records each member partition's offsets and, for a flush of several
partitions, the whole member list (``flush``: ``"0:10-19,3:7-12"``). The insert's deduplication token is
derived from that list, so a replay is exact only if it inserts the *same* rows under the same token. After a
crash or a rebalance the members may belong to different sinks; whoever replays the flush first rebuilds it
whole — its own partitions from its buffer, every other member read back from Kafka with the dedup window
that member had (``borrow``) — and the later replays are dropped by ClickHouse by token. A flush of one
partition keeps the per-partition token of the batch log's first format, so plans recorded by an older sink
replay unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from errstream_core.settings import Settings


@dataclass(frozen=True)
class Plan:
    """A recorded batch of one partition: offsets ``[first, last]`` and the flush it belongs to."""

    first: int
    last: int
    flush: str = ""  # "" : a flush of this partition alone


Member = tuple[int, int, int]  # (partition, first, last)


def members_text(members: list[Member]) -> str:
    return ",".join(f"{p}:{a}-{b}" for p, a, b in sorted(members))


def parse_members(text: str) -> list[Member]:
    """The members of a recorded flush; raises ``ValueError`` on anything but the format above."""
    out = []
    for item in text.split(","):
        p, _, rng = item.partition(":")
        a, _, b = rng.partition("-")
        out.append((int(p), int(a), int(b)))
    if not out:
        raise ValueError("a flush has at least one member")
    return sorted(out)


def flush_token(group: str, topic: str, members: list[Member]) -> str:
    """The insert's deduplication token: the same members give the same token on every sink."""
    if len(members) == 1:
        p, a, b = members[0]
        return f"{group}/{topic}/{p}/{a}-{b}"
    digest = hashlib.sha256(members_text(members).encode()).hexdigest()[:32]
    return f"{group}/{topic}/flush/{digest}"


async def borrow(settings: Settings, tp: TopicPartition, first: int, last: int, lookback: int,
                 remember: Callable[[str, int], bool]) -> list[Any]:
    """The records ``[first, last]`` of a partition another sink may own, read with a group-less consumer.

    ``remember(event_id, offset)`` is called for every record of the ``lookback`` offsets before
    ``first``: the dedup window the partition's owner had when it cut the batch.
    """
    reader = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False)
    await reader.start()
    records: list[Any] = []
    try:
        reader.assign([tp])
        reader.seek(tp, max(0, first - lookback))
        while await reader.position(tp) <= last:
            batch = await reader.getmany(tp, timeout_ms=1000, max_records=10_000)
            msgs = batch.get(tp, [])
            if not msgs:
                break
            for m in msgs:
                if m.offset > last:
                    break
                if m.offset >= first:
                    records.append(m)
                    continue
                eid = dict(m.headers or ()).get("event_id")
                if eid:
                    remember(eid.decode(errors="replace"), m.offset)
    finally:
        await reader.stop()
    return records
