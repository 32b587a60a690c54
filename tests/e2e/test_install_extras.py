"""A service that only reports errors installs errstream without extras: no chDB, faust or ClickHouse client.

The package is built and installed into a fresh venv exactly as a user would (`pip install errstream`), and
the SDK facade is used from a directory outside the checkout, so nothing leaks in from the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SDK_ONLY_PROGRAM = textwrap.dedent(
    """
    import importlib.util, json
    import errstream
    client = errstream.init("checkout", shutdown_timeout=0.5, install_hooks=False, capture_logging=False)
    assert client is not None
    try:
        raise ValueError("card declined")
    except ValueError:
        event_id = errstream.capture_exception()
    absent = [m for m in ("chdb", "faust", "clickhouse_connect", "starlette", "uvicorn", "bench", "tests")
              if importlib.util.find_spec(m) is not None]
    print(json.dumps({"event_id": event_id, "present_but_should_not_be": absent}))
    """
)


@pytest.mark.timeout(600)
def test_the_sdk_installs_and_reports_without_any_extra(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # At the locked versions, build backend included: what a user gets is pinned by their own tools, and this
    # test is about which packages come along, not about upstream drift (`make test-latest` watches that).
    pinned = {**os.environ, "PIP_CONSTRAINT": str(REPO / "requirements" / "lock.txt")}
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], capture_output=True, text=True,
                             timeout=540, env=pinned)
    assert install.returncode == 0, install.stderr[-2000:]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ERRSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    run = subprocess.run([str(python), "-c", SDK_ONLY_PROGRAM], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["present_but_should_not_be"] == []
    assert isinstance(result["event_id"], str) and len(result["event_id"]) == 32
    cli = subprocess.run([str(env_dir / "bin" / "errstream"), "--help"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env=env)
    assert cli.returncode == 2 and "pip install 'errstream[pipeline]'" in cli.stderr
    assert "Traceback" not in cli.stderr
