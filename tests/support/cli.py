"""Running the real `errstream` command line against a test's isolated settings."""

from __future__ import annotations

import os
import subprocess
import sys

from errstream_core.settings import Settings
from tests.support.services import settings_env


def cli(settings: Settings, *args: str, server_timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """``errstream ARGS`` with the test's servers, topics and database; a wide terminal so tables do not wrap.
    ``server_timeout``: the global ``--timeout`` (how long the command waits for Kafka/ClickHouse)."""
    env = {**os.environ, **settings_env(settings), "COLUMNS": "250"}
    options = ["--timeout", f"{server_timeout:g}"] if server_timeout is not None else []
    return subprocess.run([sys.executable, "-m", "errstream.cli", *options, *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
