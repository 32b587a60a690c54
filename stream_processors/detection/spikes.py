"""The ``detect-services`` agent: per-service spikes, on detection's stream repartitioned by service.

Input: ``{app}-detect-by-service``, keyed by service; each record holds, per
signal bundle that ``detect-issues`` applied, the bundle's position on the
by-fingerprint topic and its counts per (minute, fingerprint). The service
state remembers the newest bundle offset applied per by-fingerprint partition,
so counts forwarded again (a replay of ``detect-issues`` after a crash, or of
this topic after a rebalance) change nothing.
"""

from __future__ import annotations

import logging
from typing import cast

import orjson
from faust.types import StreamT

from schemas.alerts import AlertEvent
from stream_processors.detection.context import (
    BATCH_MAX,
    BATCH_WITHIN,
    REPLAYED,
    SKIPPED,
    Detection,
    acknowledged,
)
from stream_processors.detectors.services import ServiceDetector, ServiceState
from stream_processors.detectors.signals import Signal

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

    async def run(self, stream: StreamT) -> None:
        d = self.d
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            touched: dict[bytes, ServiceState] = {}
            raised: list[AlertEvent] = []
            owned = d.owned(d.by_service)
            for event in events:
                if event.message.partition not in owned:
                    continue
                key = cast(bytes, event.key)
                state = touched[key] if key in touched else self.detector.load(d.services.get(key))
                try:
                    entries = bundles(event.value)
                except (ValueError, TypeError) as exc:
                    SKIPPED.labels("invalid_service_counts").inc()
                    log.warning("detection skips a record at %s/%s: %r", event.message.partition,
                                event.message.offset, exc)
                    continue
                for partition, offset, groups in entries:
                    if state is not None and state.applied.seen(partition, offset):
                        REPLAYED.labels("detect-services").inc()
                        continue
                    state, alerts = self.detector.observe_bundle(state, partition, offset, groups)
                    raised.extend(alerts)
                if state is not None:
                    touched[key] = state
            await acknowledged(await d.send_alerts(raised) if d.cfg.service_spikes else [])
            for key, state in touched.items():
                d.services[key] = state.to_dict()
            await d.services.written()


def install(detection: Detection) -> None:
    agent = ServiceAgent(detection)

    @detection.app.agent(detection.by_service, name="detect-services")
    async def detect_services(stream: StreamT) -> None:
        await agent.run(stream)
