"""Detection agents, installed into the worker's faust app.

Topology (every topic has ``topic_partitions`` partitions, so faust assigns
partition *p* of all of them, and of the tables' changelogs, to one worker)::

    {app}-detect-by-fingerprint (signal bundles from the processing stage, one per
    partition of their fingerprints) ──▶ detect-issues ──▶ alerts
        │  state: issues[fingerprint], reads statuses[fingerprint]
        ├──▶ {app}-detect-by-service (key service; per-batch counts) ──▶ detect-services ──▶ alerts
        └──▶ {app}-detect-by-trace (partition of the trace id) ──▶ detect-chains ──▶ {app}-chains, alerts
    issue-status (compacted, key fingerprint) ──▶ track-issue-status: statuses[fingerprint]

Tables are faust Tables whose changelog partition is computed from the key,
keyed by the same bytes as their source topic's records: the changelog record of a key then
lands on the partition number of that key's source records, whichever event
is "current" inside a ``take_events`` batch, and a restarted or rebalanced
worker recovers exactly the keys it will process. Each batch writes a touched
key once (values are reassigned, never mutated in place behind faust's back)
before the batch's alerts are sent, so a crash after the alert left can only
re-emit it from a state that does not know about it yet — with the same
deterministic ``alert_id``. Values are stored as the plain dicts they
recover as, so a value reads the same before and after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, cast

import faust
import orjson
from faust.types import TP, StreamT
from prometheus_client import Counter
from pydantic import ValidationError

from errstream_core.settings import Settings
from errstream_core.topics import by_fingerprint_topic, by_service_topic, by_trace_topic, key_hash
from schemas.alerts import AlertEvent
from schemas.issue_status import IssueStatusChange
from stream_processors.detectors.chains import ChainState
from stream_processors.detectors.config import DetectionConfig
from stream_processors.detectors.issues import IssueDetector
from stream_processors.detectors.services import ServiceDetector
from stream_processors.detectors.signals import Signal

log = logging.getLogger("errstream.detect")

ALERTS = Counter("errstream_alerts", "Alerts published, by kind", ["kind"])
SKIPPED = Counter("errstream_detect_skipped", "Records detection could not use, by reason", ["reason"])
LATE = Counter("errstream_detect_late_events", "Events older than their window's grace: counted in ClickHouse, "
               "not by detection")

BATCH_MAX = 1_000
BATCH_WITHIN = 0.05  # seconds


def _partition(key: bytes, partitions: int) -> int:
    """The Java/aiokafka default partitioner, to know which worker owns a key."""
    return key_hash(key) % partitions


class KeyPartitionedTable(faust.Table):
    """A table whose changelog partition is the partition of the key's source records.

    ``use_partitioner=True`` would ask the producer's metadata for the changelog's
    partition count, which it may not have yet right after faust created the topic
    (a TypeError inside faust); the partition is known without asking.
    """

    def partition_for_key(self, key: Any) -> int:
        return _partition(key, self.partitions or 1)


def install_detection(app: faust.App, settings: Settings) -> None:
    cfg = DetectionConfig.from_settings(settings)
    n = settings.topic_partitions
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    by_fingerprint = app.topic(by_fingerprint_topic(settings), partitions=n, **raw)
    status_topic = app.topic(settings.topic_issue_status, **raw)
    by_service = app.topic(by_service_topic(settings), partitions=n, **raw)
    by_trace = app.topic(by_trace_topic(settings), partitions=n, **raw)
    alerts_topic = app.topic(settings.topic_alerts, **raw)
    chains_out = app.topic(settings.chains_topic, **raw)

    # key_type=bytes is what makes faust use the raw key serializer for the changelog (and its recovery);
    # values are JSON (the states' ``__json__``), decoded back to dicts on recovery.
    def table(name: str) -> KeyPartitionedTable:
        t = KeyPartitionedTable(app, name=name, partitions=n, key_type=bytes, beacon=app.tables.beacon)
        app.tables.add(t)  # what app.Table does, with our class
        return t

    issues = table("detect-issues")
    statuses = table("detect-issue-status")
    services = table("detect-services")
    chains = table("detect-chains")

    issue_detector = IssueDetector(cfg)
    service_detector = ServiceDetector(cfg)

    async def publish(alerts: list[AlertEvent]) -> list[Any]:
        """Send alerts once the state that records them is on the broker.

        Table writes are buffered by faust; without the flush an alert could leave before the changelog
        record saying "alerted", and a crash in between would re-alert after recovery. Only batches that
        alert pay this round trip.
        """
        if not alerts:
            return []
        await app.producer.flush()
        sent = []
        for a in alerts:
            ALERTS.labels(a.kind).inc()
            sent.append(await alerts_topic.send(key=a.dedup_key.encode(), value=a.model_dump_json().encode()))
        return sent

    @app.agent(status_topic, name="track-issue-status")
    async def track_issue_status(stream: StreamT) -> None:
        async for event in stream.events():
            key = event.key
            if event.value is None:  # tombstone on the compacted topic: status forgotten
                if key is not None and key in statuses:
                    del statuses[key]
                continue
            try:
                change = IssueStatusChange.model_validate_json(event.value)
            except ValidationError as exc:
                SKIPPED.labels("invalid_issue_status").inc()
                log.warning("ignoring an invalid issue status record at %s/%s: %s", event.message.partition,
                            event.message.offset, exc.errors()[:1])
                continue
            statuses[change.fingerprint.encode()] = change.model_dump(mode="json")
            log.info("issue %s is %s (%s)", change.fingerprint, change.status, change.changed_by)

    @app.agent(by_fingerprint, name="detect-issues")
    async def detect_issues(stream: StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            touched: dict[bytes, Any] = {}
            raised: list[AlertEvent] = []
            per_service: dict[str, dict[tuple[int, str], list[Any]]] = {}
            traced: list[Signal] = []
            for event in events:
                try:
                    sigs = [Signal(*fields) for fields in orjson.loads(event.value)]
                except (ValueError, TypeError) as exc:
                    SKIPPED.labels("invalid_signal_bundle").inc()
                    log.warning("detection skips a record at %s/%s: %r", event.message.partition,
                                event.message.offset, exc)
                    continue
                for sig in sigs:
                    key = sig.fingerprint.encode()
                    state = touched[key] if key in touched else issue_detector.load(issues.get(key))
                    status = statuses.get(key)
                    late_before = state.late if state is not None else 0
                    touched[key], alerts = issue_detector.observe(state, sig, status)
                    if touched[key].late > late_before:
                        LATE.inc()
                    raised.extend(alerts)
                    if status is not None and status.get("status") == "ignored":
                        continue  # ignored issues take no part in service spikes or chains
                    group = per_service.setdefault(sig.service, {}).setdefault(
                        (int(sig.ts // 60), sig.fingerprint), [sig, 0])
                    group[0] = sig if sig.ts >= group[0].ts else group[0]
                    group[1] += 1
                    if sig.trace_id:
                        traced.append(sig)
            for key, state in touched.items():
                issues[key] = state.to_dict()
            pending = await publish(raised)
            for service, groups in per_service.items():
                value = orjson.dumps([[*sig.fields(), count] for sig, count in groups.values()])
                pending.append(await by_service.send(key=service.encode(), value=value))
            by_partition: dict[int, list[bytes]] = {}
            for sig in traced:  # one record per partition: the chain table's key decides the partition
                by_partition.setdefault(_partition(sig.trace_id.encode(), n), []).append(sig.dumps())  # type: ignore[union-attr]
            for partition, records in by_partition.items():
                pending.append(await by_trace.send(partition=partition, value=b"[" + b",".join(records) + b"]"))
            if pending:
                await asyncio.gather(*pending)

    @app.agent(by_service, name="detect-services")
    async def detect_services(stream: StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            touched: dict[bytes, Any] = {}
            raised: list[AlertEvent] = []
            for event in events:
                key = cast(bytes, event.key)
                state = touched[key] if key in touched else service_detector.load(services.get(key))
                for *fields, count in orjson.loads(event.value):
                    state, alerts = service_detector.observe(state, Signal(*fields), count)
                    raised.extend(alerts)
                touched[key] = state
            for key, state in touched.items():
                services[key] = state.to_dict()
            pending = await publish(raised) if cfg.service_spikes else []
            if pending:
                await asyncio.gather(*pending)

    due: dict[bytes, float] = {}  # trace → loop time when its chain is published
    expiry: deque[tuple[float, bytes]] = deque()  # (loop time, trace) of chains to forget
    # Traces whose errors all come from one service are not chains (yet): they stay in memory, unlogged,
    # because most traces never get a second service and a changelog write per traced error would cost
    # more than everything else detection does. A crash forgets them (see the README).
    forming: dict[bytes, ChainState] = {}
    forming_expiry: deque[tuple[float, bytes]] = deque()
    forming_ttl = max(30.0, 3 * cfg.chain_window)
    rescan = {"needed": True}

    def now() -> float:
        return asyncio.get_running_loop().time()

    def load_chain(value: Any) -> ChainState | None:
        return None if value is None else ChainState.from_dict(value)

    @app.agent(by_trace, name="detect-chains")
    async def detect_chains(stream: StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            touched: dict[bytes, ChainState] = {}
            for event in events:
                for fields in orjson.loads(event.value):
                    sig = Signal(*fields)
                    key = sig.trace_id.encode()  # type: ignore[union-attr]
                    chain = touched.get(key) or forming.get(key) or load_chain(chains.get(key))
                    if chain is None:
                        chain = forming[key] = ChainState(trace_id=sig.trace_id)  # type: ignore[arg-type]
                        forming_expiry.append((now() + forming_ttl, key))
                    if not chain.add(sig, cfg.chain_window):
                        continue
                    if key in touched or len({e[1] for e in chain.events}) >= cfg.chain_min_services:
                        if key in forming:
                            del forming[key]
                            expiry.append((now() + cfg.chain_retention, key))
                        touched[key] = chain
                        due[key] = now() + cfg.chain_settle
            for key, chain in touched.items():
                chains[key] = chain.to_dict()
            t = now()
            while forming_expiry and forming_expiry[0][0] <= t:
                forming.pop(forming_expiry.popleft()[1], None)

    def owned(topic: str, key: bytes) -> bool:
        return TP(topic, _partition(key, n)) in app.assignor.assigned_actives()

    def _assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        rescan["needed"] = True

    app.on_partitions_assigned.connect(_assigned, weak=False)  # type: ignore[arg-type]

    @app.timer(interval=0.2)
    async def publish_chains() -> None:
        if rescan["needed"] and not app.in_recovery:
            # after a restart or a rebalance, chains recovered from the changelog have no timers yet
            rescan["needed"] = False
            for key, value in list(chains.items()):
                chain = load_chain(value)
                if chain is not None and not chain.published and key not in due:
                    due[key] = now() + cfg.chain_settle
                expiry.append((now() + cfg.chain_retention, key))
        t = now()
        pending = []
        for key in [k for k, at in due.items() if at <= t]:
            del due[key]
            chain = load_chain(chains.get(key))
            if chain is None or not owned(by_trace.get_topic_name(), key):
                continue
            record = chain.record()
            raised = []
            if not chain.alerted:
                chain.alerted = True
                raised.append(chain.alert(record))
            chain.published = True
            chains[key] = chain.to_dict()
            pending.append(await chains_out.send(key=key, value=record.model_dump_json().encode()))
            pending.extend(await publish(raised))
        while expiry and expiry[0][0] <= t:
            _, key = expiry.popleft()
            if key not in due and key in chains and owned(by_trace.get_topic_name(), key):
                del chains[key]
        if pending:
            await asyncio.gather(*pending)
