"""`errstream bench compare` puts the latest run beside an earlier one, so a regression is seen the day it lands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _record(home: Path, commit: str, drain: float, cpu: float, bench: str = "e2e") -> None:
    (home / "bench").mkdir(parents=True, exist_ok=True)
    doc = {"bench": bench, "at": "2026-12-07T10:00:00+00:00", "host": "h", "load_average": 0.1, "commit": commit,
           "params": {"events": 100}, "figures": {"drain": {"events_per_s": drain}, "cpu_us_per_event": cpu}}
    with open(home / "bench" / "results.jsonl", "a") as out:
        out.write(json.dumps(doc) + "\n")


def _compare(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ERRSTREAM_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "errstream.cli", "bench", "compare", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_latest_run_is_shown_beside_the_previous_one_with_ratios(tmp_path: Path) -> None:
    _record(tmp_path, "a3c8aca", 6_000, 235)
    _record(tmp_path, "9999999", 1, 1, bench="worker")  # another benchmark's run is not compared
    _record(tmp_path, "678d978", 4_500, 348)
    done = _compare(tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("earlier: a3c8aca") and lines[1].startswith("latest:  678d978")
    [drain] = [line for line in lines if line.startswith("drain.events_per_s")]
    assert drain.split()[1:] == ["6,000", "4,500", "0.750"]
    [cpu] = [line for line in lines if line.startswith("cpu_us_per_event")]
    assert cpu.split()[-1] == "1.481"


def test_an_earlier_commit_can_be_named_and_a_missing_one_is_one_line(tmp_path: Path) -> None:
    for commit, drain in (("a3c8aca", 6_000), ("bbbbbbb", 5_000), ("678d978", 4_500)):
        _record(tmp_path, commit, drain, 300)
    done = _compare(tmp_path, "e2e", "--against", "a3c8")
    assert done.returncode == 0 and done.stdout.startswith("earlier: a3c8aca")
    missing = _compare(tmp_path, "e2e", "--against", "0000000")
    assert missing.returncode == 1 and "no earlier run at commit 0000000" in missing.stderr
    assert "Traceback" not in missing.stderr
    empty = _compare(tmp_path / "nothing")
    assert empty.returncode == 1 and "needs two recorded runs" in empty.stderr
