"""Detached service processes tracked by pid files.

Local services must outlive the CLI call that started them (``errstream local
up`` returns) and be stoppable from another call, so each one runs in its own
session with its pid in ``<state>/<name>.pid``.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc); 0 where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(fn: Callable[[], T], ok: Callable[[T], bool], timeout: float, what: str,
             diagnostics: Callable[[], Any] | None = None, interval: float = 0.5) -> T:
    """Call ``fn`` every ``interval`` s until ``ok`` holds for its value; that value.

    Polling instead of fixed sleeps: as fast as the system allows, as patient as
    ``timeout``. On timeout the AssertionError names ``what``, the last value and
    whatever ``diagnostics`` returns (a process's log, say).
    """
    deadline = time.monotonic() + timeout
    last: T = fn()
    while not ok(last):
        if time.monotonic() > deadline:
            extra = f"\n{diagnostics()}" if diagnostics else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}{extra}")
        time.sleep(interval)
        last = fn()
    return last


_LISTEN_PORTS = range(20_000, 32_000)
"""Where test and local servers listen: below Linux's default ephemeral range (32768-60999), from
which the kernel picks the source port of every outgoing connection. A port handed out from the
ephemeral range and released can be taken by some client's connection before the server binds it;
a broker's controller port (the port above the client port) was lost that way."""


def _ephemeral_range() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32_768, 61_000)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int = 1, attempts: int = 200) -> int:
    """The first of ``n`` consecutive free ports on 127.0.0.1, outside the kernel's ephemeral range.

    Randomised so that parallel test runs and helpers rarely pick the same block.
    """
    ephemeral = _ephemeral_range()
    for _ in range(attempts):
        base = random.randrange(_LISTEN_PORTS.start, _LISTEN_PORTS.stop - n)
        block = range(base, base + n)
        if any(p in ephemeral for p in block):
            continue
        if all(_bindable(p) for p in block):
            return base
    raise RuntimeError(f"no {n} consecutive free ports on 127.0.0.1")


def free_port() -> int:
    """A free port on 127.0.0.1 for a server we are about to start."""
    return free_ports(1)


def free_port_pair(attempts: int = 200) -> int:
    """A free port whose successor is free too: the local broker listens on both (clients, controller)."""
    return free_ports(2, attempts)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): reap it if it is our child; if it is another process's child
    # (`errstream local down` stopping what a still-running parent started), it has exited all the same.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped by its parent (Linux's /proc; elsewhere: no)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][:1] == "Z"


@dataclass
class ManagedProcess:
    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        log.close()
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self.pid() is None:
                tail = self.tail_log()
                raise RuntimeError(f"{what} exited during start-up; last log lines:\n{tail}")
            time.sleep(0.2)
        raise RuntimeError(f"{what} did not become ready in {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the process group, then SIGKILL what is left. True if something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if not _alive(pid):
                break
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail_log(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
