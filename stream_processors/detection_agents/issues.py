"""The ``detect-issues`` agent: signal bundles → per-issue state, issue alerts, and the forwards.

Input: ``{app}-detect-by-fingerprint``, one bundle per processing-stage batch
and partition of the fingerprints it carries.

During a grouping upgrade (docs/grouping.md#grouping-versions-and-upgrades) a signal
also names the previous version's fingerprint. A fingerprint its partition does not
know yet is asked about at the previous fingerprint's partition (one forward): when
that is a known issue, the event counts as that issue (no new-issue alert) and the
new fingerprint is merged into it once, on the issue-merges topic, so the views show
one issue and later events of the new fingerprint, merged, stay in it. Otherwise it
is a new issue under both versions, forwarded back to its own partition. Only the
first events of each new fingerprint cross the topic again. Per issue (the table
``detect-issues``, keyed by fingerprint): new issue, regression, count
thresholds, N-in-M, issue spikes, and, once per bundle for an issue archived "until escalating", the
escalating check (it publishes the issue's ``escalating`` status itself). Events it counts for the first time are
forwarded, per bundle, to ``{app}-detect-by-service`` (counts per minute and
fingerprint, tagged with the bundle's partition and offset so the service
state can recognise a re-forwarded bundle) and to ``{app}-detect-by-trace``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from faust.types import StreamT
from prometheus_client import Counter

from schemas.alerts import AlertEvent
from schemas.issue_merge import IssueMergeChange
from schemas.issue_status import IssueStatusChange
from stream_processors.detection_agents.context import (
    BATCH_MAX,
    BATCH_WITHIN,
    REPLAYED,
    Detection,
    acknowledged,
    json_arrays,
    partition_of,
    signal_bundle,
)
from stream_processors.detection_agents.gaps import Positions, Record, follow_tails
from stream_processors.detection_rules.escalating import until_escalating
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
    merged: list[IssueMergeChange] = field(default_factory=list)  # grouping upgrade: new fingerprint → issue
    forwarded: dict[int, list[list[Any]]] = field(default_factory=dict)  # partition → signals, upgrade only
    escalated: list[IssueStatusChange] = field(default_factory=list)  # archived issues back in the stream


class IssueAgent:
    def __init__(self, detection: Detection) -> None:
        self.d = detection
        self.detector = IssueDetector(detection.cfg)
        self.positions = Positions(detection, detection.by_fingerprint, detection.issues, "detect-issues")

    def _state(self, batch: _Batch, key: bytes) -> IssueState | None:
        return batch.touched[key] if key in batch.touched else self.detector.load(self.d.issues.get(key))

    def _upgrade(self, batch: _Batch, partition: int, sig: Signal) -> tuple[bytes, str | None] | None:
        """Where a signal of a grouping upgrade's transition counts: (state key, primary), or None when it was
        forwarded. It arrives on its own fingerprint's partition. Known there (its state, or a merge): as
        usual. Otherwise the previous fingerprint's partition decides: that issue exists → the event is
        its event and the new fingerprint is merged into it once; it does not → a new issue, back home."""
        n = self.d.partitions
        key, previous = sig.fingerprint.encode(), sig.previous.encode()
        home = partition_of(key, n)
        if home == partition and (self._state(batch, key) is not None or self.d.merges.get(key)):
            sig.previous = ""
            return key, None
        if partition_of(previous, n) != partition:  # ask where the previous version's issue would live
            batch.forwarded.setdefault(partition_of(previous, n), []).append(sig.fields())
            return None
        old = self._state(batch, previous)
        if old is None:  # not an issue under the previous version either: a new issue, counted at home
            sig.previous = ""
            if home != partition:
                batch.forwarded.setdefault(home, []).append(sig.fields())
                return None
            return key, None
        primary = self.d.merges.get(previous) or sig.previous
        if sig.fingerprint not in old.upgraded and not old.replayed(sig):
            old.upgraded.add(sig.fingerprint)
            batch.touched[previous] = old
            batch.merged.append(upgrade_merge(sig, primary))
        return previous, primary

    def fold(self, batch: _Batch, partition: int, offset: int, value: bytes) -> None:
        """Fold one bundle into ``batch``; signals the issue states already counted are skipped."""
        sigs = signal_bundle(value, partition, offset, "invalid_signal_bundle")
        if sigs is None:
            return
        groups: dict[str, dict[tuple[int, str], list[Any]]] = {}
        # a bundle holds many events of few issues; a table read costs more than the rest of a signal's work
        # (nothing else runs during a fold, so a status or merge cannot change within it)
        statuses: dict[bytes, Any] = {}
        merges: dict[bytes, Any] = {}
        watched: dict[bytes, tuple[Signal, str | None]] = {}  # archived until escalating: its newest event
        for sig in sigs:
            key = sig.fingerprint.encode()
            primary: str | None = None
            if sig.previous and sig.previous != sig.fingerprint:
                upgraded = self._upgrade(batch, partition, sig)
                if upgraded is None:
                    continue  # asked at the other fingerprint's partition
                key, primary = upgraded
            state = self._state(batch, key)
            if state is not None and state.replayed(sig):
                REPLAYED.labels("detect-issues").inc()
                continue
            status = statuses[key] if key in statuses else statuses.setdefault(key, self.d.statuses.get(key))
            if not primary:
                primary = merges[key] if key in merges else merges.setdefault(key, self.d.merges.get(key))
            late_before = state.late if state is not None else 0
            state, alerts = self.detector.observe(state, sig, status, primary)
            batch.touched[key] = state
            if state.late > late_before:
                LATE.inc()
            batch.raised.extend(alerts)
            if until_escalating(status):
                watched[key] = (sig, primary)
            if silenced(state, sig, status):
                continue  # ignored issues take no part in service spikes or chains
            group = groups.setdefault(sig.service, {}).setdefault((int(sig.ts // 60), sig.fingerprint), [sig, 0])
            group[0] = sig if sig.ts >= group[0].ts else group[0]
            group[1] += 1
            if sig.trace_id:
                batch.traced.append(sig)
        for key, (sig, primary) in watched.items():  # once per bundle, not per event
            escalated = self.detector.escalate(batch.touched[key], key.decode(), sig, statuses[key], primary)
            if escalated is not None:
                batch.raised.append(escalated[0])
                batch.escalated.extend(escalated[1])
        for service, per_minute in groups.items():
            batch.by_service.setdefault(service, []).append(
                [partition, offset, [[*sig.fields(), count] for sig, count in per_minute.values()]])

    async def store(self, batch: _Batch) -> None:
        """Send the batch's alerts and forwards, wait for their acks, then write the states (see context.py)."""
        d = self.d
        pending = await d.send_alerts(batch.raised)
        for change in batch.merged:
            pending.append(await d.merge_topic.send(key=change.fingerprint.encode(),
                                                   value=change.model_dump_json().encode()))
        for status in batch.escalated:
            log.info("issue %s is escalating: %s", status.fingerprint, status.note)
            pending.append(await d.status_topic.send(key=status.fingerprint.encode(),
                                                    value=status.model_dump_json().encode()))
        for owner, signals in batch.forwarded.items():
            for value in json_arrays(map(orjson.dumps, signals)):
                pending.append(await d.by_fingerprint.send(partition=owner, value=value))
        for service, entries in batch.by_service.items():  # an entry (one bundle's counts) stays whole
            for value in json_arrays(map(orjson.dumps, entries)):
                pending.append(await d.by_service.send(key=service.encode(), value=value))
        by_partition: dict[int, list[bytes]] = {}
        for sig in batch.traced:  # records per partition: the chain table's key decides the partition
            by_partition.setdefault(partition_of(sig.trace_id.encode(), d.partitions), []).append(sig.dumps())  # type: ignore[union-attr]
        for partition, records in by_partition.items():
            for value in json_arrays(records):
                pending.append(await d.by_trace.send(partition=partition, value=value))
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


def upgrade_merge(sig: Signal, primary: str) -> IssueMergeChange:
    """The merge that keeps a re-fingerprinted bug in its existing issue; deterministic, so a replay
    publishes the same record."""
    return IssueMergeChange(fingerprint=sig.fingerprint, primary=primary, action="merge",
                            changed_at=datetime.fromtimestamp(sig.received, UTC), changed_by="grouping-upgrade",
                            note=f"grouping upgrade: {sig.previous} is now {sig.fingerprint}")


def install(detection: Detection) -> None:
    agent = IssueAgent(detection)
    follow_tails(detection, agent.positions, agent.apply)

    @detection.app.agent(detection.by_fingerprint, name="detect-issues")
    async def detect_issues(stream: StreamT) -> None:
        await agent.run(stream)
