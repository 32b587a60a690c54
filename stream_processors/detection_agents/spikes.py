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
import time
from typing import cast

import orjson
from faust.types import StreamT

from errstream_core.settings import Settings
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


HISTORY_SQL = """
SELECT service, intDiv(toUInt32(hour), 3600) AS h, toUInt64(sum(events)) AS n
FROM {table}
WHERE hour >= toDateTime({since:UInt32}, 'UTC') AND hour < toDateTime({until:UInt32}, 'UTC')
GROUP BY service, h
"""


def hourly_history(settings: Settings, days: int, now: float | None = None
                   ) -> tuple[dict[str, dict[int, int]], int, int] | None:
    """Per-service events per hour (hour index = epoch s // 3600) over the last ``days`` whole days, from
    ClickHouse ``error_counts_1h``, with the [since, until) hour range; None (one log line) when ClickHouse
    cannot be read: a best effort at start, so a cold worker knows each service's time of day."""
    if days <= 0 or not settings.spike_seasonal:
        return None
    until = int((time.time() if now is None else now) // 3_600)
    since = until - days * 24
    try:
        import clickhouse_connect  # the pipeline extra; a worker without it learns live

        client = clickhouse_connect.get_client(**settings.clickhouse_client_kwargs(), connect_timeout=3,
                                               send_receive_timeout=30)
        try:
            table = f"`{settings.clickhouse_database}`.error_counts_1h"
            rows = client.query(HISTORY_SQL.replace("{table}", table),
                                parameters={"since": since * 3_600, "until": until * 3_600}).result_rows
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure only means no bootstrap
        log.warning("detection starts without seasonal history (error_counts_1h not readable: %s); "
                    "each service learns its time of day live", str(exc).splitlines()[0][:200] if str(exc) else exc)
        return None
    out: dict[str, dict[int, int]] = {}
    for service, hour, n in rows:
        out.setdefault(str(service), {})[int(hour)] = int(n)
    log.info("detection: seasonal history of %d services from error_counts_1h (%d days)", len(out), days)
    return out, since, until


class ServiceAgent:
    def __init__(self, detection: Detection) -> None:
        self.d = detection
        self.detector = ServiceDetector(detection.cfg)
        self.positions = Positions(detection, detection.by_service, detection.services, "detect-services")
        self.history = hourly_history(detection.settings, detection.cfg.bootstrap_days)

    def load(self, key: bytes) -> ServiceState | None:
        """The service's state; a service without one starts from its ClickHouse history when there is one."""
        state = self.detector.load(self.d.services.get(key))
        if state is None and self.history is not None:
            hourly = self.history[0].pop(key.decode("utf-8", "replace"), None)
            if hourly:
                state = self.detector.bootstrapped(None, hourly, self.history[1], self.history[2])
        return state

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
        state = touched[key] if key in touched else self.load(key)
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
