"""A token bucket: the gateway's per-project rate limit and the notifier's per-destination one.

A bucket of ``capacity`` tokens refills continuously at its rate; each event or
delivery takes one. Bursts up to the capacity pass at once, a sustained flood
is cut to the configured rate. The clock is injectable so the refill can be
tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate_per_minute: float, capacity: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive")
        self.rate_per_second = rate_per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else rate_per_minute)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    @classmethod
    def per_second(cls, rate: float, capacity: float) -> TokenBucket:
        return cls(rate * 60.0, capacity)

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_second)
        self.updated = now

    def take(self, n: float = 1.0) -> float:
        """Take ``n`` tokens: 0.0 when they were there, else the seconds until they will be (none are taken)."""
        self._refill()
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (min(n, self.capacity) - self.tokens) / self.rate_per_second

    def try_take(self) -> bool:
        return self.take() == 0.0

    def seconds_until_available(self) -> float:
        self._refill()
        return max(0.0, (1.0 - self.tokens) / self.rate_per_second)
