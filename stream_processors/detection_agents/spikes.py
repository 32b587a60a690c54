"""The ``detect-services`` agent: per-service spikes, on detection's stream repartitioned by service.

Input: ``{app}-detect-by-service``, keyed by service; each record holds, per
signal bundle that ``detect-issues`` applied, the bundle's position on the
by-fingerprint topic and its counts per (minute, fingerprint). The service
state remembers the newest bundle offset applied per by-fingerprint partition,
so counts forwarded again (a replay of ``detect-issues`` after a crash, or of
this topic after a rebalance) change nothing. Records faust skipped after a
rebalance are read again from the topic (``gaps.py``), in offset order before
the records that follow them: the state's "newest bundle applied" needs each
service's records in order.
"""

from __future__ import annotations

import logging
from typing import cast

import orjson
from faust.types import StreamT

from schemas.alerts import AlertEvent
from stream_processors.detection_agents.context import (
    BATCH_MAX,
    BATCH_WITHIN,
    REPLAYED,
    SKIPPED,
    Detection,
    acknowledged,
)
from stream_processors.detection_agents.gaps import Positions, Record, follow_tails
from stream_processors.detection_rules.services import ServiceDetector, ServiceState
from stream_processors.detection_signals import Signal

log = logging.getLogger("errstream.detect")


def bundles(value: bytes) -> list[tuple[int | None, int | None, list[tuple[Signal, int]]]]:
    """The (partition, offset, groups) entries of a by-service record."""
    out: list[tuple[int | None, int | None, list[tuple[Signal, int]]]] = []
    for partition, offset, groups in orjson.loads(value):
        out.append((partition, offset, [(Signal(*fields), count) for *fields, count in groups]))
    return out


class ServiceAgent:
    def __init__(self, detection: Detection) -> None:
        self.d = detection
        self.detector = ServiceDetector(detection.cfg)
        self.positions = Positions(detection, detection.by_service, detection.services, "detect-services")

    def fold(self, touched: dict[bytes, ServiceState], raised: list[AlertEvent], partition: int, offset: int,
             key: bytes | None, value: bytes) -> None:
        """Fold one by-service record into ``touched``; bundles the service state already applied are skipped."""
        try:
            if not key:
                raise ValueError("no service key")
            entries = bundles(value)
        except (ValueError, TypeError) as exc:
            SKIPPED.labels("invalid_service_counts").inc()
            log.warning("detection skips a record at %s/%s: %r", partition, offset, exc)
            return
        state = touched[key] if key in touched else self.detector.load(self.d.services.get(key))
        for bundle_partition, bundle_offset, groups in entries:
            if state is not None and state.applied.seen(bundle_partition, bundle_offset):
                REPLAYED.labels("detect-services").inc()
                continue
            state, alerts = self.detector.observe_bundle(state, bundle_partition, bundle_offset, groups)
            raised.extend(alerts)
        if state is not None:
            touched[key] = state

    async def apply(self, parts: dict[int, tuple[list[Record], int | None]]) -> None:
        """Fold each partition's records, send the alerts, then store states and checkpoints (one batch)."""
        d = self.d
        touched: dict[bytes, ServiceState] = {}
        raised: list[AlertEvent] = []
        checkpoints: dict[int, int] = {}
        for partition, (records, last) in parts.items():
            for offset, key, value in records:
                self.fold(touched, raised, partition, offset, cast(bytes | None, key), value)
            if last is not None:
                checkpoints[partition] = last
        await acknowledged(await d.send_alerts(raised) if d.cfg.service_spikes else [])
        for key, state in touched.items():
            d.services[key] = state.to_dict()
        self.positions.store(checkpoints)  # after the states: recovered with them or not at all
        await d.services.written()

    async def run(self, stream: StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            async with self.positions.lock:
                await self.apply(await self.positions.delivered(events))


def install(detection: Detection) -> None:
    agent = ServiceAgent(detection)
    follow_tails(detection, agent.positions, agent.apply)

    @detection.app.agent(detection.by_service, name="detect-services")
    async def detect_services(stream: StreamT) -> None:
        await agent.run(stream)
