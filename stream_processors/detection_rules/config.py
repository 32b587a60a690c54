"""Detection parameters, taken from ``ERRSTREAM_*`` settings in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from errstream_core.settings import Settings
from stream_processors.detection_rules.escalating import EscalatingRule
from stream_processors.detection_rules.spikes import SpikeRule


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    grace: float = 60.0  # seconds a minute stays open for late events
    cooldown: float = 1_800.0  # seconds of event time between two alerts of one dedup key
    thresholds: tuple[int, ...] = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
    rate_count: int = 0  # N events ...
    rate_minutes: int = 5  # ... in M minutes (off when N is 0)
    spike: SpikeRule = field(default_factory=SpikeRule)
    rise_cooldown: float = 1_800.0  # seconds of event time between two sustained-rise alerts of one key
    bootstrap_days: int = 14  # cold start: hourly profile from error_counts_1h over this many days (0 = off)
    service_spikes: bool = True
    issue_spikes: bool = False
    chain_window: float = 5.0  # seconds of event time from a trace's first error
    chain_settle: float = 1.0  # wall seconds without growth before a chain is published
    chain_min_services: int = 2
    chain_retention: float = 600.0  # wall seconds a published chain is remembered (late errors join it)
    escalating: EscalatingRule = field(default_factory=EscalatingRule)  # archived until escalating

    @classmethod
    def from_settings(cls, s: Settings) -> DetectionConfig:
        scopes = {x.strip() for x in s.spike_scopes.split(",")}
        return cls(
            grace=s.detect_grace_seconds, cooldown=s.alert_cooldown_seconds,
            thresholds=tuple(sorted(s.alert_threshold_counts)), rate_count=s.alert_rate_count,
            rate_minutes=s.alert_rate_minutes,
            spike=SpikeRule(factor=s.spike_factor, z=s.spike_z, min_count=s.spike_min_count, ramp=s.spike_ramp,
                            alpha=s.spike_alpha,
                            seasonal_alpha=s.spike_seasonal_alpha, var_alpha=s.spike_var_alpha, warmup=s.spike_warmup_minutes, floor=s.spike_floor,
                            seasonal=s.spike_seasonal, rise_factor=s.rise_factor, rise_z=s.rise_z,
                            rise_minutes=s.rise_minutes, rise_min_count=s.rise_min_count),
            rise_cooldown=s.rise_cooldown_seconds, bootstrap_days=s.spike_bootstrap_days,
            service_spikes="service" in scopes, issue_spikes="issue" in scopes,
            chain_window=s.chain_window_seconds, chain_settle=s.chain_settle_seconds,
            chain_min_services=s.chain_min_services, chain_retention=s.chain_retention_seconds,
            escalating=EscalatingRule(min_per_hour=s.escalating_min_per_hour),
        )
