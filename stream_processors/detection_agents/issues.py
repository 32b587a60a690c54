"""The ``detect-issues`` agent: signal bundles → per-issue state, issue alerts, and the forwards.

Input: ``{app}-detect-by-fingerprint``, one bundle per processing-stage batch
and partition of the fingerprints it carries. Per issue (the table
``detect-issues``, keyed by fingerprint): new issue, regression, count
thresholds, N-in-M, issue spikes. Events it counts for the first time are
forwarded, per bundle, to ``{app}-detect-by-service`` (counts per minute and
fingerprint, tagged with the bundle's partition and offset so the service
state can recognise a re-forwarded bundle) and to ``{app}-detect-by-trace``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust.types import StreamT
from prometheus_client import Counter

from schemas.alerts import AlertEvent
from stream_processors.detection_agents.context import (
    BATCH_MAX,
    BATCH_WITHIN,
    REPLAYED,
    Detection,
    acknowledged,
    partition_of,
    signal_bundle,
)
from stream_processors.detection_agents.gaps import Positions, Record, follow_tails
from stream_processors.detection_rules.issues import IssueDetector, IssueState, silenced
from stream_processors.detection_signals import Signal

log = logging.getLogger("errstream.detect")

LATE = Counter("errstream_detect_late_events", "Events older than their window's grace: counted in ClickHouse, "
               "not by detection")


@dataclass
class _Batch:
    """What one ``take_events`` batch changes: states to store and outputs to send first."""

    touched: dict[bytes, IssueState] = field(default_factory=dict)
    raised: list[AlertEvent] = field(default_factory=list)
    # service → entries [bundle partition, bundle offset, [[*signal fields, count], ...]]
    by_service: dict[str, list[list[Any]]] = field(default_factory=dict)
    traced: list[Signal] = field(default_factory=list)
    checkpoints: dict[int, int] = field(default_factory=dict)  # partition → last bundle offset folded


class IssueAgent:
    def __init__(self, detection: Detection) -> None:
        self.d = detection
        self.detector = IssueDetector(detection.cfg)
        self.positions = Positions(detection, detection.by_fingerprint, detection.issues, "detect-issues")

    def _state(self, batch: _Batch, key: bytes) -> IssueState | None:
        return batch.touched[key] if key in batch.touched else self.detector.load(self.d.issues.get(key))

    def fold(self, batch: _Batch, partition: int, offset: int, value: bytes) -> None:
        """Fold one bundle into ``batch``; signals the issue states already counted are skipped."""
        sigs = signal_bundle(value, partition, offset, "invalid_signal_bundle")
        if sigs is None:
            return
        groups: dict[str, dict[tuple[int, str], list[Any]]] = {}
        for sig in sigs:
            key = sig.fingerprint.encode()
            state = self._state(batch, key)
            if state is not None and state.replayed(sig):
                REPLAYED.labels("detect-issues").inc()
                continue
            status = self.d.statuses.get(key)
            late_before = state.late if state is not None else 0
            state, alerts = self.detector.observe(state, sig, status, self.d.merges.get(key))
            batch.touched[key] = state
            if state.late > late_before:
                LATE.inc()
            batch.raised.extend(alerts)
            if silenced(state, sig, status):
                continue  # ignored issues take no part in service spikes or chains
            group = groups.setdefault(sig.service, {}).setdefault((int(sig.ts // 60), sig.fingerprint), [sig, 0])
            group[0] = sig if sig.ts >= group[0].ts else group[0]
            group[1] += 1
            if sig.trace_id:
                batch.traced.append(sig)
        for service, per_minute in groups.items():
            batch.by_service.setdefault(service, []).append(
                [partition, offset, [[*sig.fields(), count] for sig, count in per_minute.values()]])

    async def store(self, batch: _Batch) -> None:
        """Send the batch's alerts and forwards, wait for their acks, then write the states (see context.py)."""
        d = self.d
        pending = await d.send_alerts(batch.raised)
        for service, entries in batch.by_service.items():
            pending.append(await d.by_service.send(key=service.encode(), value=orjson.dumps(entries)))
        by_partition: dict[int, list[bytes]] = {}
        for sig in batch.traced:  # one record per partition: the chain table's key decides the partition
            by_partition.setdefault(partition_of(sig.trace_id.encode(), d.partitions), []).append(sig.dumps())  # type: ignore[union-attr]
        for partition, records in by_partition.items():
            pending.append(await d.by_trace.send(partition=partition, value=b"[" + b",".join(records) + b"]"))
        await acknowledged(pending)
        for key, state in batch.touched.items():
            d.issues[key] = state.to_dict()
        self.positions.store(batch.checkpoints)  # after the states: recovered with them or not at all
        await d.issues.written()

    async def apply(self, parts: dict[int, tuple[list[Record], int | None]]) -> None:
        """Fold each partition's records and store the result (one batch)."""
        batch = _Batch()
        for partition, (records, last) in parts.items():
            for offset, _, value in records:
                self.fold(batch, partition, offset, value)
            if last is not None:
                batch.checkpoints[partition] = last
        await self.store(batch)

    async def run(self, stream: StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            async with self.positions.lock:
                await self.apply(await self.positions.delivered(events))


def install(detection: Detection) -> None:
    agent = IssueAgent(detection)
    follow_tails(detection, agent.positions, agent.apply)

    @detection.app.agent(detection.by_fingerprint, name="detect-issues")
    async def detect_issues(stream: StreamT) -> None:
        await agent.run(stream)
