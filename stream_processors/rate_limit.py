"""Caps on stored raw events per minute: per fingerprint and for the whole worker.

A storm (one bug firing 50,000 times a minute) would otherwise fill
``error_events`` with identical rows and slow every query on it; a hundred
samples of one bug say all there is to say. Excess events are still forwarded
and counted, only not stored.

Windows are fixed minutes of *event* time, like ``error_counts_1m``: the
decision for an event does not depend on when the worker happened to read it,
so tests and replays behave the same. Only the most recent ``max_windows``
minutes are kept in memory. Limits apply per worker process: N workers store
at most N times the limit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

RATE_LIMITED_FINGERPRINT = "rate_limited_fingerprint"
RATE_LIMITED_GLOBAL = "rate_limited_global"


@dataclass
class _Window:
    total: int = 0
    per_fingerprint: dict[str, int] = field(default_factory=dict)


@dataclass
class RateLimiter:
    per_fingerprint: int = 100  # stored events per fingerprint and minute; 0 = unlimited
    global_limit: int = 10_000  # stored events per minute for this worker; 0 = unlimited
    max_windows: int = 16
    _windows: OrderedDict[int, _Window] = field(default_factory=OrderedDict, repr=False)

    def _window(self, minute: int) -> _Window:
        window = self._windows.get(minute)
        if window is None:
            window = self._windows[minute] = _Window()
            if len(self._windows) > self.max_windows:
                oldest = min(self._windows)
                del self._windows[oldest]
        return window

    def admit(self, fingerprint: str, timestamp: datetime) -> str | None:
        """None when the event may be stored (and it is counted against the limits), else the reason."""
        window = self._window(int(timestamp.timestamp()) // 60)
        used = window.per_fingerprint.get(fingerprint, 0)
        if self.per_fingerprint and used >= self.per_fingerprint:
            return RATE_LIMITED_FINGERPRINT
        if self.global_limit and window.total >= self.global_limit:
            return RATE_LIMITED_GLOBAL
        window.per_fingerprint[fingerprint] = used + 1
        window.total += 1
        return None
