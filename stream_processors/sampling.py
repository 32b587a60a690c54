"""Which raw events are stored: per-level sample rates, overridable per service.

The decision is a pure function of the event id, so a replayed or duplicated
event is decided the same way by any worker at any time (a random draw would
store a replay that the first pass dropped, or the reverse). The id is hashed
first because producers do not all use random UUIDs: sequential or time-based
ids would otherwise make "the first 10 %" the sample.

Sampling only decides storage. Every event is still forwarded and counted, so
``error_counts_1m`` holds true totals and the stored ``sample_rate`` lets
queries on raw events scale back up.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_LEVEL_RATES: dict[str, float] = {
    "critical": 1.0, "error": 1.0, "warning": 0.5, "info": 0.1, "debug": 0.01,
}
_SCALE = 1 << 64


def check_rate(rate: float, where: str) -> float:
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"{where}: a sample rate must be in (0, 1], got {rate!r}")
    return rate


@dataclass(frozen=True)
class SamplingPolicy:
    level_rates: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_LEVEL_RATES))
    service_rates: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    _table: dict[tuple[str, str], float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        levels = {**DEFAULT_LEVEL_RATES, **self.level_rates}
        for level, rate in levels.items():
            check_rate(rate, f"level {level}")
        table: dict[tuple[str, str], float] = {}
        for service, overrides in self.service_rates.items():
            for level, rate in {**levels, **overrides}.items():
                table[(service, level)] = check_rate(rate, f"service {service} level {level}")
        object.__setattr__(self, "level_rates", levels)
        object.__setattr__(self, "_table", table)

    def rate(self, service: str, level: str) -> float:
        rate = self._table.get((service, level))
        return rate if rate is not None else self.level_rates.get(level, 1.0)


def keep(event_id: uuid.UUID, rate: float) -> bool:
    """Deterministic Bernoulli(rate) draw keyed by the event id."""
    if rate >= 1.0:
        return True
    draw = int.from_bytes(hashlib.blake2b(event_id.bytes, digest_size=8).digest(), "big")
    return draw < rate * _SCALE
