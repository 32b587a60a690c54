"""Running the real worker and sink processes from tests, and waiting on their results.

The process handling itself is :mod:`errstream.local.roles` (shared with the benchmarks and the demo);
this module keeps the names the tests use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from errstream.local.process import wait_for
from errstream.local.roles import RoleProcess, settings_env
from errstream_core.settings import Settings

__all__ = ["STORE_EVERYTHING_ENV", "Service", "running_services", "settings_env", "wait_for"]

# Delivery tests count stored rows too: every level at rate 1.0 and no rate limits, so nothing is
# sampled out or limited (test_sampling_e2e.py covers those).
STORE_EVERYTHING_ENV = {
    "ERRSTREAM_SAMPLE_RATES": '{"debug": 1.0, "info": 1.0, "warning": 1.0}',
    "ERRSTREAM_RATE_LIMIT_PER_FINGERPRINT": "0",
    "ERRSTREAM_RATE_LIMIT_GLOBAL": "0",
}


class Service(RoleProcess):
    """One `errstream <command>` process with its output in a log file (``Service(command, settings, log_dir)``)."""

    def __init__(self, command: str, settings: Settings, log_dir: Path, extra_env: dict[str, str] | None = None,
                 args: Sequence[str] = ()):
        super().__init__(command, settings, log_dir, extra_env=extra_env, args=args)
        self.command = command


@contextmanager
def running_services(settings: Settings, log_dir: Path,
                     worker_env: dict[str, str] | None = None) -> Iterator[dict[str, Service]]:
    """The real `errstream worker` (with ``worker_env`` on top of ``settings``) and `errstream sink`."""
    running = {
        "worker": Service("worker", settings, log_dir, extra_env=worker_env).start(),
        "sink": Service("sink", settings, log_dir).start(),
    }
    try:
        yield running
    finally:
        for svc in running.values():
            svc.stop()
