"""`errstream local up|status|down` as an operator uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from errstream.local.process import free_port, port_open


def _cli(home: Path, kafka_port: int, ch_port: int, *args: str) -> str:
    env = {
        **os.environ,
        "ERRSTREAM_HOME": str(home),
        "ERRSTREAM_LOCAL_KAFKA_PORT": str(kafka_port),
        "ERRSTREAM_LOCAL_CLICKHOUSE_PORT": str(ch_port),
    }
    out = subprocess.run([sys.executable, "-m", "errstream.cli", "local", *args], env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _processes_under(home: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(home) in part for part in p.info["cmdline"] or []):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.skipif(os.environ.get("ERRSTREAM_KAFKA_BOOTSTRAP") is not None, reason="external servers configured")
def test_up_is_idempotent_and_down_leaves_nothing_running(tmp_path: Path) -> None:
    home = tmp_path / "state"
    kafka_port, ch_port = free_port(), free_port()
    first = _cli(home, kafka_port, ch_port, "up")
    assert f"127.0.0.1:{kafka_port}" in first and f"127.0.0.1:{ch_port}" in first
    _cli(home, kafka_port, ch_port, "up")  # a second `up` is fine
    status = _cli(home, kafka_port, ch_port, "status")
    assert "ready" in status and "not running" not in status
    # how to connect: the logins and their password files (never the passwords themselves)
    assert f"{home / 'clickhouse-analyst.password'}" in status and "read-only" in status
    assert (home / "clickhouse.password").read_text().strip() not in first + status
    assert port_open("127.0.0.1", kafka_port) and port_open("127.0.0.1", ch_port)

    down = _cli(home, kafka_port, ch_port, "down")
    assert "stopped" in down
    after = _cli(home, kafka_port, ch_port, "status")
    assert after.count("not running") == 2
    assert not port_open("127.0.0.1", kafka_port) and not port_open("127.0.0.1", ch_port)
    assert _processes_under(home) == []


def test_cluster_ids_never_look_like_command_line_options() -> None:
    from errstream.local.kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(5_000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
