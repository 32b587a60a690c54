"""Every ``errstream bench`` command at a tiny size, so none of them rots.

Each runs as a user runs it (``errstream bench <name>`` in a process of its own)
from an empty working directory, on the test broker and ClickHouse, and must
print its figures, record them under ``ERRSTREAM_HOME/bench/results.jsonl`` and
leave the working directory empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

# (command line, lines the output must contain); a key's first word is the command ("gateway otlp" runs
# `errstream bench gateway` in another mode)
TINY: dict[str, tuple[list[str], list[str]]] = {
    "core": (["--events", "300", "--passes", "1"], ["throughput (CPU)", "latency per event p50"]),
    "spikes": (["--series", "4", "--minutes", "180"], ["false positives", "one-minute burst"]),
    "sdk": (["--events", "300", "--rate", "2000"], ["caller cost, paced", "SDK send throughput", "broker down"]),
    "gateway": (["--seconds", "1", "--runs", "1", "--warmup", "0", "--connections", "4", "--driver", "httpx"],
                ["gateway: median"]),
    "gateway otlp": (["--seconds", "1", "--runs", "1", "--warmup", "0", "--connections", "4", "--driver",
                             "httpx", "--mode", "otlp", "--json"], ['"mode": "otlp"']),
    "gateway-cpu": (["--requests", "40", "--rounds", "2", "--concurrency", "8"],
                    ["sentry", "otlp", "µs of CPU per event", "otlp / sentry CPU per event"]),
    "worker": (["--events", "300"], ["µs per event"]),
    "alerts": (["--rate", "200", "--seconds", "2", "--probes", "4"], ["alert latency     p50"]),
    "notify": (["--paced", "5", "--rate", "50", "--burst", "20"], ["paced  5 alerts", "burst  20 alerts",
                                                                   "alerts rows/unique 30/30 (expected 30)"]),
    "clickhouse-load": (["--events", "20000", "--raw", "2000", "--client-events", "300", "--client-batch", "100",
                         "--groups", "50", "--days", "1", "--chunk", "10000", "--repeat", "1"],
                        ["slowest_query_s", "client insert path: ", "server peak RSS"]),
    "web": (["--events", "20000", "--raw", "2000", "--groups", "50", "--requests", "2", "--days", "1",
             "--live-rounds", "1"], ["page: issue", "issue page: similar issues", "live stream: a new issue",
                                     "at p95:"]),
    "e2e": (["--events", "500", "--rate", "300", "--seconds", "2", "--json"],
            ['"drain_events_per_s"', '"drain_to_raw_ratio"', '"latency_ms"', '"peak_rss_mb"']),
}


@dataclass
class Run:
    cwd: Path
    home: Path
    out: subprocess.CompletedProcess[str]


def _run(name: str, root: Path, kafka_bootstrap: str, clickhouse_url: str) -> Run:
    args, _ = TINY[name]
    cwd, home = root / name / "cwd", root / name / "home"
    cwd.mkdir(parents=True)
    env = {**os.environ, "ERRSTREAM_HOME": str(home), "ERRSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "ERRSTREAM_CLICKHOUSE_URL": clickhouse_url}
    if name in ("clickhouse-load", "web"):
        args = [*args, "--url", clickhouse_url]  # the test server: no second embedded one to start
    out = subprocess.run([sys.executable, "-m", "errstream.cli", "bench", name.split()[0], *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=400)
    return Run(cwd, home, out)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str,
         clickhouse_url: str) -> Iterator[dict[str, Future[Run]]]:
    """The selected benchmarks, three at a time: each is mostly waiting (process start-up, group joins), so
    the suite pays for the slowest lane, not for the sum."""
    selected = [str(item.callspec.params["name"]) for item in request.session.items
                if isinstance(item, pytest.Function) and item.module is request.module and hasattr(item, "callspec")]
    root = tmp_path_factory.mktemp("bench")
    with ThreadPoolExecutor(max_workers=3) as pool:
        yield {name: pool.submit(_run, name, root, kafka_bootstrap, clickhouse_url) for name in selected}


@pytest.mark.parametrize("name", list(TINY))
def test_benchmark_prints_figures_and_writes_nothing_into_the_cwd(name: str, runs: dict[str, Future[Run]]) -> None:
    run = runs[name].result()
    out = run.out
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for text in TINY[name][1]:
        assert text in out.stdout, f"{text!r} missing from:\n{out.stdout}\n{out.stderr[-2000:]}"
    assert list(run.cwd.iterdir()) == []
    [record] = [json.loads(line) for line in (run.home / "bench" / "results.jsonl").read_text().splitlines()]
    assert record["bench"] == name.split()[0] and record["figures"] and record["params"]
    if name == "gateway otlp":  # events were counted as accepted through the OTLP endpoint
        assert json.loads(out.stdout)["figures"]["events_per_s"] > 0
    if name == "e2e":  # the --json document: figures that add up, progress kept off stdout
        doc = json.loads(out.stdout)
        f = doc["figures"]
        assert f["all_counted"] and f["counted"] == f["expected"] >= 500 + 300
        assert f["drain_events_per_s"] > 0 and f["drain_to_raw_ratio"] > 0
        assert f["probes_queryable"] == f["probes"] > 0 and f["latency_ms"]["p50"] > 0
        assert set(f["peak_rss_mb"]) == {"worker", "sink", "broker", "clickhouse"} and f["peak_rss_mb"]["worker"]
        assert "drain:" in out.stderr
