"""Launcher for the embedded ClickHouse endpoint (chDB behind ClickHouse's HTTP protocol).

One process owns the on-disk store; everything else reaches it over HTTP on
loopback, never by opening the same directory twice.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from errstream.local.process import ManagedProcess, port_open


@dataclass
class LocalClickHouse:
    state_dir: Path
    port: int = 8123
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

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
        store = (self.state_dir / "chdb").resolve()
        self.process.start(
            [sys.executable, "-m", "errstream.local.chdb_http", "--path", str(store),
             "--host", self.host, "--port", str(self.port)]
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
