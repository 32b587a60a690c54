"""`errstream local down` also stops what `errstream demo` left running in the background."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from errstream.local.roles import background_role
from errstream_core.settings import Settings


def test_local_down_stops_the_web_app_and_notify_the_demo_left_running(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    pids = {role: background_role(role, settings).start([sys.executable, "-c", "import time; time.sleep(120)"])
            for role in ("web", "notify")}

    env = {**os.environ, "ERRSTREAM_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "errstream.cli", "local", "down"], env=env, capture_output=True,
                          text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert "web        stopped" in done.stdout and "notify     stopped" in done.stdout, done.stdout
    for role, pid in pids.items():
        assert background_role(role, settings).pid() is None, f"{role} (pid {pid}) still runs"
    assert "kafka      was not running" in done.stdout


def test_local_down_says_nothing_about_background_roles_when_none_ran(tmp_path: Path) -> None:
    env = {**os.environ, "ERRSTREAM_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "errstream.cli", "local", "down"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "web" not in done.stdout and "notify" not in done.stdout, done.stdout
