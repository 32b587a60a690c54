"""What every detection agent shares: its topics, tables, config, and the send-then-store rule.

Every table is keyed by the same bytes as its source topic's records and puts
a key's changelog record on that key's source partition, so a restarted or
rebalanced worker recovers exactly the keys it will process.

Exactness under replays rests on two rules every agent follows:

1. **Idempotent state.** Table values remember the input positions they have
   applied (``detection_rules/replay.py``): input delivered again changes nothing.
2. **Send, then store, then acknowledge.** A batch's outputs (alerts,
   forwarded signals, chain records) are acknowledged by Kafka *before* its
   state is written, and the state writes are acknowledged (``written``) before
   the batch's input is: faust commits only acknowledged input. So after a
   crash either the state is on the changelog (and so are the outputs), or the
   input is delivered again and, the state not knowing it, derives the same
   outputs again — same deterministic ``alert_id``, stored once by the alerts
   sink. Outputs are thus sent at least once and never lost, state applied
   exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from faust.types import TopicT
from prometheus_client import Counter

from errstream_core.settings import Settings
from errstream_core.topics import by_fingerprint_topic, by_service_topic, by_trace_topic, key_hash
from schemas.alerts import AlertEvent
from stream_processors.detection_rules.config import DetectionConfig
from stream_processors.detection_signals import Signal

ALERTS = Counter("errstream_alerts", "Alerts published, by kind", ["kind"])
SKIPPED = Counter("errstream_detect_skipped", "Records detection could not use, by reason", ["reason"])
REPLAYED = Counter("errstream_detect_replayed", "Input detection had already applied (re-delivered after a "
                   "rebalance or a crash), by agent", ["agent"])

log = logging.getLogger("errstream.detect")

BATCH_MAX = 1_000
BATCH_WITHIN = 0.05  # seconds
# What one forwarded record may hold. An agent's batch gathers up to BATCH_MAX bundles, and what it forwards
# per partition or service grows with them: 12,000 traced events of one batch made a 1.1 MB record, which
# the producer refuses (1 MB ``max_request_size``) and the agent crashed on. Several smaller records still
# cross in one produce request.
FORWARD_RECORD_BYTES = 256 * 1024


def json_arrays(items: Iterable[bytes], limit: int = FORWARD_RECORD_BYTES) -> Iterator[bytes]:
    """JSON arrays of already-encoded ``items``, in order, each within ``limit`` bytes (an item larger than
    that goes alone): one forwarded batch becomes as many records as it needs, each a bundle of its own."""
    chunk: list[bytes] = []
    size = 2
    for item in items:
        if chunk and size + len(item) + 1 > limit:
            yield b"[" + b",".join(chunk) + b"]"
            chunk, size = [], 2
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        yield b"[" + b",".join(chunk) + b"]"


def partition_of(key: bytes, partitions: int) -> int:
    """The Java/aiokafka default partitioner, to know which worker owns a key."""
    return key_hash(key) % partitions


class KeyPartitionedTable(faust.Table):
    """A table whose changelog partition is the partition of the key's source records, and whose writes can
    be awaited until the broker has them.

    ``use_partitioner=True`` would ask the producer's metadata for the changelog's
    partition count, which it may not have yet right after faust created the topic
    (a TypeError inside faust); the partition is known without asking.

    ``written``: faust buffers changelog records and flushes that buffer before it
    commits input offsets, but its buffer flush (faust-streaming 0.15.3,
    ``ProducerBuffer.flush_atmost``) returns as soon as one record takes more than
    0.1 s to hand over — on a loaded worker, offsets were committed past state
    writes still in the buffer, and a SIGKILL then lost counts whose input was
    never replayed. Agents await their writes before their input is acknowledged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unacked: list[asyncio.Future[Any]] = []

    def partition_for_key(self, key: Any) -> int:
        return partition_of(key, self.partitions or 1)

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        fut = super().send_changelog(*args, **kwargs)
        self.unacked.append(fut)
        return fut

    async def written(self) -> None:
        """Wait until the broker acknowledged every changelog record written so far (a failed write raises)."""
        pending, self.unacked = self.unacked, []
        if not pending:
            return
        done, waiting = await asyncio.wait(pending, timeout=10)  # type: ignore[type-var]
        while waiting:  # one line per 10 s: a broker that does not answer, not a log storm
            log.warning("%d changelog writes of %s still unacknowledged after 10 s", len(waiting), self.name)
            more, waiting = await asyncio.wait(waiting, timeout=10)
            done |= more
        for fut in done:
            fut.result()


def _table(app: faust.App, name: str, partitions: int) -> KeyPartitionedTable:
    # key_type=bytes is what makes faust use the raw key serializer for the changelog (and its recovery);
    # values are JSON (the states' ``to_dict``), decoded back to dicts on recovery: a value reads the same
    # before and after a restart.
    t = KeyPartitionedTable(app, name=name, partitions=partitions, key_type=bytes, beacon=app.tables.beacon)
    app.tables.add(t)  # what app.Table does, with our class
    return t


@dataclass
class Detection:
    """The worker's detection topology (see ``detection_agents/app.py`` for the picture)."""

    app: faust.App
    settings: Settings
    cfg: DetectionConfig
    by_fingerprint: TopicT = field(init=False)
    by_service: TopicT = field(init=False)
    by_trace: TopicT = field(init=False)
    status_topic: TopicT = field(init=False)
    merge_topic: TopicT = field(init=False)
    alerts_topic: TopicT = field(init=False)
    chains_out: TopicT = field(init=False)
    issues: KeyPartitionedTable = field(init=False)
    statuses: KeyPartitionedTable = field(init=False)
    merges: KeyPartitionedTable = field(init=False)
    services: KeyPartitionedTable = field(init=False)
    chains: KeyPartitionedTable = field(init=False)
    _settled: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        app, s, n = self.app, self.settings, self.partitions
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.by_fingerprint = app.topic(by_fingerprint_topic(s), partitions=n, **raw)
        self.status_topic = app.topic(s.topic_issue_status, **raw)
        self.merge_topic = app.topic(s.topic_issue_merges, **raw)
        self.by_service = app.topic(by_service_topic(s), partitions=n, **raw)
        self.by_trace = app.topic(by_trace_topic(s), partitions=n, **raw)
        self.alerts_topic = app.topic(s.topic_alerts, **raw)
        self.chains_out = app.topic(s.chains_topic, **raw)
        self.issues = _table(app, "detect-issues", n)
        self.statuses = _table(app, "detect-issue-status", n)
        self.merges = _table(app, "detect-issue-merges", n)
        self.services = _table(app, "detect-services", n)
        self.chains = _table(app, "detect-chains", n)

    @property
    def partitions(self) -> int:
        return self.settings.topic_partitions

    def owned(self, topic: TopicT) -> set[int]:
        """The partitions of ``topic`` this worker owns now: after a revocation, a batch taken before it must
        not write state the new owner has already recovered (the new owner replays the batch itself)."""
        name = topic.get_topic_name()
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == name}

    def owns_key(self, topic: TopicT, key: bytes) -> bool:
        return partition_of(key, self.partitions) in self.owned(topic)

    def settled(self, fingerprint: str) -> bool:
        """Detection here already decided this fingerprint's issue: it has a state, or is merged into one.

        During a grouping upgrade, only the first events of a fingerprint need the previous version's
        fingerprint (``issues._upgrade`` then counts them "as usual"); the processing stage asks this before
        computing it, so a transition costs a second grouping only until detection has seen a fingerprint.
        False (compute it) for a fingerprint another worker owns or that is not recovered yet. States are
        never deleted, so a yes is remembered.
        """
        if fingerprint in self._settled:
            return True
        key = fingerprint.encode()
        if self.issues.get(key) is None and not self.merges.get(key):
            return False
        if len(self._settled) >= 100_000:
            self._settled.clear()
        self._settled.add(fingerprint)
        return True

    async def send_alerts(self, alerts: Iterable[AlertEvent]) -> list[Awaitable[Any]]:
        """Start sending alerts (keyed by dedup key); the caller awaits the acks before storing state."""
        pending = []
        for a in alerts:
            ALERTS.labels(a.kind).inc()
            pending.append(await self.alerts_topic.send(key=a.dedup_key.encode(), value=a.model_dump_json().encode()))
        return pending


async def acknowledged(pending: list[Awaitable[Any]]) -> None:
    """Wait until Kafka acknowledged every send (a failed send raises: the batch is not stored, so it replays)."""
    if pending:
        await asyncio.gather(*pending)


def signal_bundle(value: bytes, partition: int, offset: int, reason: str) -> list[Signal] | None:
    """The signals of one bundle record; ``None`` (counted under ``reason``, one warning) for a bad one."""
    try:
        return [Signal(*fields) for fields in orjson.loads(value)]
    except (ValueError, TypeError) as exc:
        SKIPPED.labels(reason).inc()
        log.warning("detection skips a record at %s/%s: %r", partition, offset, exc)
        return None
