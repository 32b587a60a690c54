"""Running the real worker and sink processes from tests, and waiting on their results."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from errstream_core.settings import Settings

T = TypeVar("T")

# Delivery tests count stored rows too: every level at rate 1.0 and no rate limits, so nothing is
# sampled out or limited (test_sampling_e2e.py covers those).
STORE_EVERYTHING_ENV = {
    "ERRSTREAM_SAMPLE_RATES": '{"debug": 1.0, "info": 1.0, "warning": 1.0}',
    "ERRSTREAM_RATE_LIMIT_PER_FINGERPRINT": "0",
    "ERRSTREAM_RATE_LIMIT_GLOBAL": "0",
}


def settings_env(settings: Settings) -> dict[str, str]:
    env = {
        "ERRSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ERRSTREAM_CLICKHOUSE_URL": settings.clickhouse_url,
        "ERRSTREAM_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "ERRSTREAM_TOPIC_ERRORS": settings.topic_errors,
        "ERRSTREAM_TOPIC_DLQ": settings.topic_dlq,
        "ERRSTREAM_TOPIC_ALERTS": settings.topic_alerts,
        "ERRSTREAM_TOPIC_PROCESSED": settings.topic_processed,
        "ERRSTREAM_TOPIC_ISSUE_STATUS": settings.topic_issue_status,
        "ERRSTREAM_TOPIC_GROUPING_RULES": settings.topic_grouping_rules,
        "ERRSTREAM_GROUPING_RULES_DELAY_SECONDS": str(settings.grouping_rules_delay_seconds),
        "ERRSTREAM_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "ERRSTREAM_APP_ID": settings.app_id,
        "ERRSTREAM_SINK_GROUP": settings.sink_group,
        "ERRSTREAM_SINK_BATCH_SECONDS": str(settings.sink_batch_seconds),
        "ERRSTREAM_SINK_BATCH_ROWS": str(settings.sink_batch_rows),
    }
    return env


class Service:
    """One `errstream <command>` process with its output in a log file."""

    def __init__(self, command: str, settings: Settings, log_dir: Path, extra_env: dict[str, str] | None = None):
        self.command = command
        self.log = log_dir / f"{command}-{time.monotonic_ns()}.log"
        self.env = {**os.environ, **settings_env(settings), **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "errstream.cli", self.command],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no commit — what a crashed host looks like."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_for(fn: Callable[[], T], ok: Callable[[T], bool], timeout: float, what: str,
              diagnostics: Callable[[], Any] | None = None) -> T:
    deadline = time.monotonic() + timeout
    last: T = fn()
    while not ok(last):
        if time.monotonic() > deadline:
            extra = f"\n{diagnostics()}" if diagnostics else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}{extra}")
        time.sleep(0.5)
        last = fn()
    return last


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
