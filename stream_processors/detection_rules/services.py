"""Per-service spike detection, on the stream repartitioned by service.

Two alerts people mean, each with its own dedup key and cooldown: a *burst*
(``spike:service:<svc>``, one minute far above the seasonal expectation) and a
*sustained rise* (``rise:service:<svc>``, the last few minutes together far
above it). A burst of one issue shows up as one service alert naming its top
fingerprints (issue-level spikes are a separate, opt-in scope).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.alerts import AlertEvent
from stream_processors.detection_rules.config import DetectionConfig
from stream_processors.detection_rules.cooldown import Cooldowns
from stream_processors.detection_rules.issues import rise_alert, spike_alert
from stream_processors.detection_rules.replay import AppliedOffsets
from stream_processors.detection_rules.spikes import Baseline, check_rise, check_spike
from stream_processors.detection_rules.windows import MinuteWindows
from stream_processors.detection_signals import Signal

TOP_TRACKED = 50  # fingerprints counted per open minute (the rest still count towards the total)


@dataclass(slots=True)
class ServiceState:
    windows: MinuteWindows
    baseline: Baseline = field(default_factory=Baseline)
    cooldowns: Cooldowns = field(default_factory=Cooldowns)
    spiked: set[int] = field(default_factory=set)
    risen: set[int] = field(default_factory=set)  # window ends that already raised a rise hit
    top: dict[int, dict[str, int]] = field(default_factory=dict)  # open minute → fingerprint → count
    late: int = 0
    applied: AppliedOffsets = field(default_factory=AppliedOffsets)  # detection partition → bundle offset applied

    def to_dict(self) -> dict[str, Any]:
        return {"w": self.windows.to_dict(), "b": self.baseline.to_dict(), "cd": self.cooldowns.last,
                "s": sorted(self.spiked), "rs": sorted(self.risen), "t": {str(m): c for m, c in self.top.items()}, "l": self.late,
                "a": self.applied.high}

    @classmethod
    def from_dict(cls, d: dict[str, Any], cfg: DetectionConfig) -> ServiceState:
        return cls(windows=MinuteWindows.from_dict(d.get("w", {}), cfg.grace, cfg.spike.rise_minutes),
                   baseline=Baseline.from_dict(d.get("b", {})), cooldowns=Cooldowns(dict(d.get("cd", {}))),
                   spiked=set(d.get("s", [])), risen=set(d.get("rs", [])), top={int(m): dict(c) for m, c in d.get("t", {}).items()},
                   late=d.get("l", 0), applied=AppliedOffsets(dict(d.get("a", {}))))


class ServiceDetector:
    def __init__(self, cfg: DetectionConfig):
        self.cfg = cfg

    def load(self, value: Any) -> ServiceState | None:
        if value is None:
            return None
        return ServiceState.from_dict(value, self.cfg)

    def bootstrapped(self, state: ServiceState | None, hourly: dict[int, int], since_hour: int,
                     until_hour: int) -> ServiceState:
        """``state`` (a new one when None) with its seasonal profile learned from hourly counts (hour index →
        events, for since_hour ≤ hour < until_hour): a cold worker starts from ``error_counts_1h``."""
        if state is None:
            state = ServiceState(windows=MinuteWindows(grace=self.cfg.grace, keep=self.cfg.spike.rise_minutes))
        state.baseline.bootstrap(hourly, since_hour, until_hour, self.cfg.spike)
        return state

    def observe_bundle(self, state: ServiceState | None, partition: int | None, offset: int | None,
                       groups: list[tuple[Signal, int]]) -> tuple[ServiceState | None, list[AlertEvent]]:
        """Fold in the counts one signal bundle (``partition``/``offset`` on detection's by-fingerprint topic)
        contributed to this service; a bundle already folded in changes nothing."""
        if state is not None and state.applied.seen(partition, offset):
            return state, []
        raised: list[AlertEvent] = []
        for sig, n in groups:
            state, alerts = self.observe(state, sig, n)
            raised.extend(alerts)
        if state is not None:
            state.applied.record(partition, offset)
        return state, raised

    def observe(self, state: ServiceState | None, sig: Signal, n: int = 1) -> tuple[ServiceState, list[AlertEvent]]:
        """Add ``n`` events like ``sig`` (the worker forwards per-batch counts, ``sig`` the latest of them)."""
        cfg = self.cfg
        if state is None:
            state = ServiceState(windows=MinuteWindows(grace=cfg.grace, keep=cfg.spike.rise_minutes))
        added = state.windows.add(sig.ts, n)
        if added.late:
            state.late += n
            return state, []
        per_fp = state.top.setdefault(added.minute, {})
        if sig.fingerprint in per_fp or len(per_fp) < TOP_TRACKED:
            per_fp[sig.fingerprint] = per_fp.get(sig.fingerprint, 0) + n
        for minute, count in added.closed:
            state.baseline.fold(minute, count, cfg.spike)
            state.top.pop(minute, None)
        raised: list[AlertEvent] = []
        hit = check_spike(cfg.spike, state.baseline, added.minute, added.count, state.spiked)
        if hit is not None:
            state.spiked = {m for m in state.spiked if m >= added.minute - 3_600}
            top = sorted(per_fp.items(), key=lambda kv: -kv[1])[:5]
            key = f"spike:service:{sig.service}"
            if state.cooldowns.allow(key, sig.ts, cfg.cooldown):
                raised.append(spike_alert(key, hit, sig, f"service {sig.service}", details={
                    "scope": "service", "top_fingerprints": [{"fingerprint": f, "count": c} for f, c in top]}))
        rise = check_rise(cfg.spike, state.baseline, added.minute, state.windows.open, state.risen, state.windows.kept)
        if rise is not None:
            state.risen = {m for m in state.risen if m >= added.minute - 3_600}
            key = f"rise:service:{sig.service}"
            if state.cooldowns.allow(key, sig.ts, cfg.rise_cooldown):
                raised.append(rise_alert(key, rise, sig, f"service {sig.service}", details={"scope": "service"}))
        return state, raised
