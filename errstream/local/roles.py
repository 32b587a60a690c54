"""Running one ``errstream <role>`` process with a given configuration: tests, benchmarks and the demo.

A role (``worker``, ``sink``, ``notify``, ``gateway`` …) is started as
``python -m errstream.cli <role>`` in its own session, so a stop signal
reaches the role and anything it spawned, with its whole configuration in
``ERRSTREAM_*`` variables built from a :class:`Settings` and its output in a
log file (never the terminal of the caller, never the current directory unless
asked). Unlike :class:`errstream.local.process.ManagedProcess` (services that
outlive the command that started them, found again through pid files), a
:class:`RoleProcess` belongs to the Python object that started it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, SecretStr

from errstream.local.process import ManagedProcess
from errstream_core.settings import Settings

# Always passed on, even at their defaults: a role must never fall back to the shared default topics,
# groups or database when the caller meant its own (a test's or a benchmark's fresh ones).
_ALWAYS = ("kafka_bootstrap", "clickhouse_url", "clickhouse_database", "topic_errors", "topic_dlq", "topic_alerts",
           "topic_processed", "topic_issue_status", "topic_issue_merges", "topic_grouping_rules", "topic_sessions", "topic_alert_rules",
           "topic_partitions",
           "app_id", "sink_group",
           "sink_batch_seconds", "sink_batch_rows")


def _plain(value: Any) -> Any:
    """JSON-ready, with secrets revealed: the child needs the real webhook URL or password, not ``**********``."""
    if isinstance(value, BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    return value


def _env_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float | Path):
        return str(value)
    return json.dumps(_plain(value), default=str)


def settings_env(settings: Settings) -> dict[str, str]:
    """``ERRSTREAM_*`` variables that make a child process read ``settings``.

    The connection, topic and group fields always; any other field only when it
    was set explicitly (constructor, ``model_copy(update=…)`` or the environment),
    so a child keeps the defaults the caller kept.
    """
    names = [*_ALWAYS, *sorted(settings.model_fields_set - set(_ALWAYS))]
    env: dict[str, str] = {}
    for name in names:
        value = _env_value(getattr(settings, name))
        if value is not None:
            env[f"ERRSTREAM_{name.upper()}"] = value
    return env


class RoleProcess:
    """One ``errstream <role> [args…]`` process with its output in ``log_dir``."""

    def __init__(self, role: str, settings: Settings, log_dir: Path, *, args: Sequence[str] = (),
                 extra_env: dict[str, str] | None = None, name: str | None = None) -> None:
        self.role = role
        self.args = list(args)
        self.log = Path(log_dir) / f"{name or role}-{time.monotonic_ns()}.log"
        self.env = {**os.environ, **settings_env(settings), **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"errstream {self.role} was not started")
        return self.proc.pid

    def start(self) -> Self:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "errstream.cli", self.role, *self.args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                start_new_session=True,
            )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        """SIGKILL: no flush, no commit — what a crashed host looks like."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL if the process is still there after ``timeout`` s; its exit code."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.returncode()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> Self:
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


BACKGROUND_ROLES = ("notify", "web")  # what `errstream demo` leaves running for the user to browse


def background_role(role: str, settings: Settings) -> ManagedProcess:
    """``errstream <role>`` left running after the command that started it (pid and log in ``home``), so
    that ``errstream local down`` can stop it with the servers."""
    return ManagedProcess(f"demo-{role}", settings.home)


def start_background_role(role: str, settings: Settings) -> int:
    return background_role(role, settings).start([sys.executable, "-m", "errstream.cli", role],
                                                 env=settings_env(settings))
