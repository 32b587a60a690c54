"""Keep client libraries from flooding the log while a server is down.

aiokafka logs every failed connection attempt (thousands of lines a second with
the broker gone, in the worker). This filter lets each distinct message template
of a library logger through once per ``every`` seconds and says how many copies
it held back, so an outage costs about one line per second per process.
"""

from __future__ import annotations

import logging
import time

_LIBRARIES = ("aiokafka", "kafka", "faust", "mode", "urllib3", "clickhouse_connect")


class RateLimit(logging.Filter):
    def __init__(self, every: float = 10.0) -> None:
        super().__init__()
        self.every = every
        self.last: dict[tuple[str, object], float] = {}
        self.held: dict[tuple[str, object], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL:
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self.last.get(key, -1e9) < self.every:
            self.held[key] = self.held.get(key, 0) + 1
            return False
        self.last[key] = now
        if held := self.held.pop(key, 0):
            record.msg = f"{record.msg} (and {held} similar in the last {self.every:.0f} s)"
        if len(self.last) > 10_000:  # templates are few; bound the memory anyway
            self.last.clear()
        # the library's traceback adds nothing an operator can act on during an outage
        record.exc_info, record.exc_text = None, None
        return True


_installed = False


def quiet_library_logs(every: float = 10.0) -> None:
    """Install the filter on the client libraries' loggers (idempotent)."""
    global _installed
    if _installed or not logging.getLogger().handlers:
        return
    _installed = True
    limit = _ChildFilter(RateLimit(every))
    # A filter on a logger does not see its children's records; one on the root's handlers does.
    for handler in logging.getLogger().handlers:
        handler.addFilter(limit)


class _ChildFilter(logging.Filter):
    def __init__(self, limit: RateLimit) -> None:
        super().__init__()
        self.limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in _LIBRARIES:
            return self.limit.filter(record)
        return True
