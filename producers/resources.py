"""A snapshot of the process's and the host's resources, attached to each event the SDK sends.

Only what the standard library and the platform give, without extra dependencies:
on Linux ``/proc/self/stat`` (resident memory, threads), ``/proc/self/fd`` (open
descriptors), ``/proc/self/io`` (disk bytes, when readable), ``os.getloadavg`` and
``sysinfo`` through ``os.sysconf`` (free memory); elsewhere the fields the platform
lacks are left out. CPU % is the process's CPU time over wall time since the previous
snapshot (100 per busy core).

It is taken on the SDK's sender thread, while the event is serialised (within
milliseconds of the capture, never on the application's thread), and reused for one
second, so a burst of errors pays for one snapshot (cost: docs/performance.md#sdk).
Turn it off with ``Client(resources=False)`` / ``errstream.init(..., resources=False)``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

REUSE_SECONDS = 1.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read(4096)
    except OSError:
        return None


class ResourceSampler:
    """Snapshots as the ``resources`` object of an event; never raises (a field it cannot read is left out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cpu = (time.monotonic(), time.process_time())
        self._last: dict[str, Any] | None = None
        self._at = 0.0
        self._proc = os.path.exists("/proc/self/stat")

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            if self._last is not None and now - self._at < REUSE_SECONDS:
                return self._last
            self._last, self._at = self._take(now), now
            return self._last

    def _take(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        cpu = time.process_time()
        then, cpu_then = self._cpu
        if now > then:
            out["cpu_percent"] = round(min(max(0.0, (cpu - cpu_then) / (now - then) * 100), 100_000.0), 1)
        self._cpu = (now, cpu)
        if self._proc:
            self._linux(out)
        else:
            out["threads"] = threading.active_count()
        try:
            out["load_1m"] = round(min(os.getloadavg()[0], 100_000.0), 2)
        except (OSError, AttributeError):
            pass
        try:
            out["memory_available_bytes"] = os.sysconf("SC_AVPHYS_PAGES") * _PAGE
        except (OSError, ValueError, AttributeError):
            pass
        return out

    @staticmethod
    def _linux(out: dict[str, Any]) -> None:
        stat = _read("/proc/self/stat")
        if stat:
            # after the command name (in parentheses, which may hold spaces): state is field 3
            fields = stat[stat.rfind(b")") + 2:].split()
            try:
                out["threads"] = int(fields[17])  # field 20, num_threads
                out["rss_bytes"] = int(fields[21]) * _PAGE  # field 24, rss in pages
            except (IndexError, ValueError):
                pass
        try:
            out["open_fds"] = len(os.listdir("/proc/self/fd"))
        except OSError:
            pass
        io = _read("/proc/self/io")
        if io:
            for line in io.splitlines():
                name, _, value = line.partition(b":")
                if name in (b"read_bytes", b"write_bytes"):
                    out[name.decode()] = int(value)
