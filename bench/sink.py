"""CPU per event of a real ``errstream sink`` process (Kafka in, dedup, rows, clickhouse-connect inserts).

    .venv/bin/python -m bench.sink --events 20000

Against the configured broker and ClickHouse (``ERRSTREAM_KAFKA_BOOTSTRAP``, ``ERRSTREAM_CLICKHOUSE_URL``),
on fresh topics and a fresh database: a worker (detection off, every level stored) fills the processed
topic while the sink runs; the CPU the sink process spends from idle (joined, migrated) to idle again,
divided by the events counted in ``error_counts_1m``, is its cost per event. ClickHouse's own CPU is not included (the
server's insert rates are in docs/performance.md#clickhouse). The capacity model in docs/operations.md
uses this figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import publish_raw, wait_cpu_idle
from errstream_core.settings import Settings, get_settings
from errstream_core.topics import ensure_topics
from producers.synthetic import synthetic_event
from sinks.clickhouse.client import connect

_FIELDS = ("topic_errors", "topic_dlq", "topic_alerts", "topic_processed", "topic_issue_status", "app_id", "sink_group")
_STORE_ALL = {"ERRSTREAM_SAMPLE_RATES": '{"debug": 1.0, "info": 1.0, "warning": 1.0}',
              "ERRSTREAM_RATE_LIMIT_PER_FINGERPRINT": "0", "ERRSTREAM_RATE_LIMIT_GLOBAL": "0"}


def _start(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "errstream.cli", command], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def run_sink_bench(settings: Settings, events: int, log_dir: Path) -> list[str]:
    run = f"benchs{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(update={**{f: f"{run}.{f}" for f in _FIELDS}, "clickhouse_database": run,
                                    "detection_enabled": False})
    asyncio.run(ensure_topics(s))
    env = dict(os.environ, ERRSTREAM_KAFKA_BOOTSTRAP=s.kafka_bootstrap, ERRSTREAM_CLICKHOUSE_URL=s.clickhouse_url,
               ERRSTREAM_CLICKHOUSE_DATABASE=run, ERRSTREAM_DETECTION_ENABLED="false", **_STORE_ALL,
               **{f"ERRSTREAM_{f.upper()}": str(getattr(s, f)) for f in _FIELDS})
    rng = random.Random(1)
    now = datetime.now(UTC)
    payloads = [synthetic_event(rng, timestamp=now).model_dump_json().encode() for _ in range(events)]
    client = connect(s)
    sink = _start("sink", dict(env, ERRSTREAM_SINK_BATCH_ROWS="50000"), log_dir / f"{run}-sink.log")
    worker = _start("worker", env, log_dir / f"{run}-worker.log")
    try:
        time.sleep(5)  # start-up (imports, migrations, joining the group) is not the per-event cost
        cpu_before = wait_cpu_idle(sink.pid)
        start = time.monotonic()
        asyncio.run(publish_raw(s, s.topic_errors, payloads))
        counted = 0
        while counted < events:
            if sink.poll() is not None:
                raise RuntimeError(f"the sink exited with {sink.returncode}")
            time.sleep(0.5)
            try:
                counted = int(client.query(f"SELECT sum(events) FROM {run}.error_counts_1m").result_rows[0][0] or 0)
            except Exception:
                counted = 0
        wall = time.monotonic() - start
        cpu = wait_cpu_idle(sink.pid) - cpu_before
    finally:
        for proc in (worker, sink):
            proc.terminate()
            proc.wait(60)
        client.command(f"DROP DATABASE IF EXISTS {run}")
    return [
        f"events          {events:,} stored and counted",
        f"sink CPU        {cpu:.2f} s = {cpu / events * 1e6:,.0f} µs per event -> {events / cpu:,.0f} events/s per core",
        f"wall            {wall:.1f} s from the first publish to the last event counted (worker included)",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    args = ap.parse_args()
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    for line in run_sink_bench(settings, args.events, settings.home):  # process logs go with local state
        print(line)


if __name__ == "__main__":
    main()
