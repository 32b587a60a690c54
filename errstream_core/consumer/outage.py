"""Unreachable servers: capped exponential backoff with jitter, and one log line per state change.

A broker or ClickHouse that is down is not a record's fault: the consumer keeps its
batch and tries again later. What operators need is one line when it goes down, a
reminder every ``report_every`` seconds while it stays down, and one line when it
recovers — never a line (or a traceback) per attempt.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable


class InfrastructureError(Exception):
    """A failure that is not the record's fault: retry later, never dead-letter.

    ``rewind`` maps partitions to the offset to read again from (the step abandoned
    records it had already taken and will need them again).
    """

    def __init__(self, dependency: str, cause: BaseException, rewind: dict | None = None) -> None:
        super().__init__(f"{dependency}: {type(cause).__name__}: {cause}")
        self.dependency = dependency
        self.cause = cause
        self.rewind = rewind or {}


class Backoff:
    """Capped exponential backoff with full jitter (AWS architecture blog's 'full jitter')."""

    def __init__(self, initial: float = 0.2, cap: float = 10.0, rng: random.Random | None = None) -> None:
        self.initial, self.cap = initial, cap
        self.attempts = 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0


class Outage:
    """The state of one dependency as seen by one consumer, logged on change only."""

    def __init__(self, what: str, log: logging.Logger, report_every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.log, self.report_every, self.clock = what, log, report_every, clock
        self.since: float | None = None
        self.last_report = 0.0
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        now = self.clock()
        self.failures += 1
        if self.since is None:
            self.since = self.last_report = now
            self.log.error("%s unreachable (%s: %s); retrying with backoff", self.what, type(exc).__name__,
                           str(exc)[:300])
        elif now - self.last_report >= self.report_every:
            self.last_report = now
            self.log.error("%s still unreachable after %.0f s (%d attempts; last: %s)", self.what,
                           now - self.since, self.failures, type(exc).__name__)

    def ok(self) -> None:
        if self.since is not None:
            self.log.warning("%s recovered after %.1f s (%d failed attempts)", self.what,
                             self.clock() - self.since, self.failures)
        self.since, self.failures = None, 0
