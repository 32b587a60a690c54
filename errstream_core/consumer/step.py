"""What the runtime drives: one consumer's chain of steps, behind a small non-blocking interface.

The runtime calls ``submit`` with each poll's records (in offset order, contiguous per
partition), ``poll`` every loop to let the step make progress (flush a batch, wait for
acks), and ``revoke`` when partitions go away (rebalance or shutdown). ``poll`` and
``revoke`` return the offsets that are done — the next offset to read per partition —
and the runtime commits exactly those. A step never raises for a record's fault (it
dead-letters the record); it raises ``InfrastructureError`` when a server is
unreachable, keeping what it holds so the next ``poll`` can try again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from errstream_core.settings import Settings

Offsets = dict[TopicPartition, int]


class Step(ABC):
    name: str = "consumer"

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect what the step writes to (ClickHouse, a producer); called once before polling."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` opened."""

    async def assign(self, partitions: set[TopicPartition], committed: dict[TopicPartition, int | None]) -> None:  # noqa: B027
        """Partitions were assigned; ``committed`` is each one's committed offset (None: none yet)."""

    @abstractmethod
    async def submit(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        """Take records of one partition (contiguous, following the previous ones)."""

    @abstractmethod
    async def poll(self, force: bool = False) -> Offsets:
        """Make progress; return offsets now done. ``force``: flush whatever is buffered."""

    @abstractmethod
    async def revoke(self, partitions: set[TopicPartition], deadline: float) -> Offsets:
        """Finish (by ``deadline``, ``time.monotonic()``) or abandon the work of these partitions and forget them.

        Returns the offsets done for them; anything abandoned is replayed by the next owner.
        """

    def accepting(self) -> bool:
        """Backpressure: False while the step holds as much as it may (the runtime pauses fetching)."""
        return True


async def start_producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """A started producer for a step's outputs (acks=all, idempotent); closed again if it cannot start."""
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all", enable_idempotence=True, **options)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer
