"""The ``detect-chains`` agent and its publisher: errors sharing a trace id across services.

Input: ``{app}-detect-by-trace`` (bundles per partition of the trace id). A
chain's state (table ``detect-chains``, keyed by trace id) dedups its errors by
event id, so a replayed signal changes nothing. A chain is published once it
stops growing (``chain_settle``): its record on ``{app}-chains`` and its alert
are acknowledged before the state says "published", so a crash in between
publishes the identical record and alert again rather than never. Records faust
skipped after a rebalance are read again from the topic (``gaps.py``); the
table's checkpoint keys are no chains.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import Any

from faust.types import StreamT

from stream_processors.detection_agents.context import (
    BATCH_MAX,
    BATCH_WITHIN,
    Detection,
    acknowledged,
    signal_bundle,
)
from stream_processors.detection_agents.gaps import Positions, Record, follow_tails, is_checkpoint
from stream_processors.detection_rules.chains import ChainState
from stream_processors.detection_signals import Signal

log = logging.getLogger("errstream.detect")


def _now() -> float:
    return asyncio.get_running_loop().time()


def _load(value: Any) -> ChainState | None:
    return None if value is None else ChainState.from_dict(value)


class ChainAgent:
    """Chains being built (in the table) and the in-memory schedule of when to publish and forget them."""

    def __init__(self, detection: Detection) -> None:
        self.d = detection
        cfg = detection.cfg
        self.due: dict[bytes, float] = {}  # trace → loop time when its chain is published
        self.expiry: deque[tuple[float, bytes]] = deque()  # (loop time, trace) of chains to forget
        # Traces whose errors all come from one service are not chains (yet): they stay in memory, unlogged,
        # because most traces never get a second service and a changelog write per traced error would cost
        # more than everything else detection does. A crash forgets them (see docs/architecture.md).
        self.forming: dict[bytes, ChainState] = {}
        self.forming_expiry: deque[tuple[float, bytes]] = deque()
        self.forming_ttl = max(30.0, 3 * cfg.chain_window)
        self.rescan = True
        self.positions = Positions(detection, detection.by_trace, detection.chains, "detect-chains")

    def on_assigned(self, *args: Any, **kwargs: Any) -> None:
        self.rescan = True

    def fold(self, touched: dict[bytes, ChainState], sig: Signal) -> None:
        cfg = self.d.cfg
        key = sig.trace_id.encode()  # type: ignore[union-attr]
        chain = touched.get(key) or self.forming.get(key) or _load(self.d.chains.get(key))
        if chain is None:
            chain = self.forming[key] = ChainState(trace_id=sig.trace_id)  # type: ignore[arg-type]
            self.forming_expiry.append((_now() + self.forming_ttl, key))
        if not chain.add(sig, cfg.chain_window):
            return
        if key in touched or chain.service_count() >= cfg.chain_min_services:
            if key in self.forming:
                del self.forming[key]
                self.expiry.append((_now() + cfg.chain_retention, key))
            touched[key] = chain
            self.due[key] = _now() + cfg.chain_settle

    async def apply(self, parts: dict[int, tuple[list[Record], int | None]]) -> None:
        """Fold each partition's trace bundles, then store states and checkpoints (one batch)."""
        d = self.d
        touched: dict[bytes, ChainState] = {}
        checkpoints: dict[int, int] = {}
        for partition, (records, last) in parts.items():
            for offset, _, value in records:
                for sig in signal_bundle(value, partition, offset, "invalid_trace_bundle") or []:
                    if sig.trace_id:
                        self.fold(touched, sig)
            if last is not None:
                checkpoints[partition] = last
        for key, chain in touched.items():
            d.chains[key] = chain.to_dict()
        self.positions.store(checkpoints)  # after the states: recovered with them or not at all
        await d.chains.written()
        t = _now()
        while self.forming_expiry and self.forming_expiry[0][0] <= t:
            self.forming.pop(self.forming_expiry.popleft()[1], None)

    async def run(self, stream: StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            async with self.positions.lock:
                await self.apply(await self.positions.delivered(events))

    def _rescan(self) -> None:
        """After a restart or a rebalance, chains recovered from the changelog have no timers yet."""
        self.rescan = False
        cfg = self.d.cfg
        for key, value in list(self.d.chains.items()):
            if is_checkpoint(key):
                continue
            chain = _load(value)
            if chain is not None and not chain.published and key not in self.due:
                self.due[key] = _now() + cfg.chain_settle
            self.expiry.append((_now() + cfg.chain_retention, key))

    async def publish_due(self) -> None:
        d = self.d
        if self.rescan and not d.app.in_recovery:
            self._rescan()
        t = _now()
        pending: list[Awaitable[Any]] = []
        published: dict[bytes, ChainState] = {}
        for key in [k for k, at in self.due.items() if at <= t]:
            del self.due[key]
            chain = _load(d.chains.get(key))
            if chain is None or not d.owns_key(d.by_trace, key):
                continue
            record = chain.record()
            if not chain.alerted:
                chain.alerted = True
                pending.extend(await d.send_alerts([chain.alert(record)]))
            chain.published = True
            published[key] = chain
            pending.append(await d.chains_out.send(key=key, value=record.model_dump_json().encode()))
        await acknowledged(pending)
        for key, chain in published.items():
            d.chains[key] = chain.to_dict()
        while self.expiry and self.expiry[0][0] <= t:
            _, key = self.expiry.popleft()
            if key not in self.due and key in d.chains and d.owns_key(d.by_trace, key):
                del d.chains[key]
        await d.chains.written()


def install(detection: Detection) -> None:
    agent = ChainAgent(detection)
    follow_tails(detection, agent.positions, agent.apply)
    detection.app.on_partitions_assigned.connect(agent.on_assigned, weak=False)  # type: ignore[arg-type]

    @detection.app.agent(detection.by_trace, name="detect-chains")
    async def detect_chains(stream: StreamT) -> None:
        await agent.run(stream)

    @detection.app.timer(interval=0.2)
    async def publish_chains() -> None:
        await agent.publish_due()
