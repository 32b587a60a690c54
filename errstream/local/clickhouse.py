"""Launcher for the embedded ClickHouse endpoint (chDB behind ClickHouse's HTTP protocol).

One process owns the on-disk store; everything else reaches it over HTTP on
loopback, never by opening the same directory twice.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from errstream.local.process import ManagedProcess, port_open
from errstream_core.local_credentials import (
    ADMIN_USER,
    ANALYST_USER,
    ensure_logins,
    password_file,
    read_password,
)


@dataclass
class LocalClickHouse:
    state_dir: Path
    port: int = 8123
    host: str = "127.0.0.1"
    # bounds on a read-only (analyst) query; None: ERRSTREAM_LOCAL_CLICKHOUSE_ANALYST_* in the server's environment
    analyst_max_seconds: float | None = None
    analyst_max_memory_bytes: int | None = None

    @property
    def url(self) -> str:
        """Where it listens (no credentials: safe to print)."""
        return f"http://{self.host}:{self.port}"

    @property
    def client_url(self) -> str:
        """The URL with the read-write login in it, for errstream's own processes and tests."""
        password = read_password(self.state_dir, ADMIN_USER) or ""
        return f"http://{ADMIN_USER}:{password}@{self.host}:{self.port}"

    def how_to_connect(self) -> list[str]:
        """What `errstream local status` tells people: the logins and where their passwords are."""
        admin, analyst = (password_file(self.state_dir, u) for u in (ADMIN_USER, ANALYST_USER))
        return [
            f"login {ANALYST_USER} (read-only): password in {analyst}",
            f"login {ADMIN_USER} (read-write, errstream's own processes): password in {admin}",
            f"curl -u \"{ANALYST_USER}:$(cat {analyst})\" '{self.url}/?query=SELECT+version()'",
        ]

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("clickhouse", self.state_dir)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=1.0).text.startswith("Ok")
        except httpx.HTTPError:
            return False

    def up(self, timeout: float = 60.0) -> str:
        if self.process.pid() is not None and self._ready():
            return self.url
        if port_open(self.host, self.port):
            raise RuntimeError(f"port {self.port} is taken by a process errstream did not start")
        ensure_logins(self.state_dir)  # once: the passwords stay across restarts
        store = (self.state_dir / "chdb").resolve()
        store.mkdir(parents=True, exist_ok=True)
        os.chmod(store, 0o700)  # the store's files are the data: only the owner reads them, not via the endpoint
        self.process.start(
            [sys.executable, "-m", "errstream.local.chdb_http", "--path", str(store),
             "--home", str(self.state_dir.resolve()), "--host", self.host, "--port", str(self.port),
             *(["--analyst-max-seconds", str(self.analyst_max_seconds)] if self.analyst_max_seconds else []),
             *(["--analyst-max-memory-bytes", str(self.analyst_max_memory_bytes)]
               if self.analyst_max_memory_bytes else [])]
        )
        self.process.wait_ready(self._ready, timeout, "embedded ClickHouse")
        return self.url

    def down(self) -> bool:
        return self.process.stop(timeout=20.0)

    def status(self) -> str | None:
        pid = self.process.pid()
        if pid is None:
            return None
        return f"pid {pid}, {self.url} ({'ready' if self._ready() else 'starting'})"
