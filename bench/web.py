"""Latency of the web app's issue stream and issue page API over a generated history.

    .venv/bin/python -m bench.web --events 1000000 --raw 200000 --groups 5000 --requests 200

On its own embedded ClickHouse (free port, temp store): migrate, generate ``--events``
counted events and ``--raw`` stored ones with ``bench/clickhouse_load.py``'s generators
(the real materialized views fill counts and groups), merge the tables the app reads
(``OPTIMIZE … FINAL``: the state background merges reach), record a status for one issue in
ten, then serve ``errstream web`` with uvicorn on loopback (as ``errstream web`` does;
no Kafka needed for reads) and time HTTP requests with a viewer token: the issue stream
(default, sorted by events, by trend, filtered by service, a text search, a second page)
and the issue page API (``/api/v1/issues/{fp}`` and its events) for issues across the
distribution. Prints p50/p95/max per endpoint, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.clickhouse_load import EVENTS_SQL, OCCURRENCES_SQL, SERVICES, generate
from errstream.local.clickhouse import LocalClickHouse
from errstream.local.process import free_port
from errstream_core.settings import Settings
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate


@dataclass
class Timing:
    name: str
    samples_ms: list[float]

    def line(self) -> str:
        s = sorted(self.samples_ms)
        p95 = s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]
        return (f"{self.name:<34} n={len(s):>4}  p50 {statistics.median(s):7.1f} ms  p95 {p95:7.1f} ms  "
                f"max {s[-1]:7.1f} ms")


def _time(client: httpx.Client, urls: Callable[[int], str], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        r = client.get(urls(i))
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return out


def run_web_bench(events: int, raw: int, groups: int, requests: int, days: int = 14,
                  url: str | None = None, out: Callable[[str], Any] = print) -> list[Timing]:
    import uvicorn

    from errstream.web.app import create_app, server_config
    from errstream.web.auth import TokenStore

    home = Path(tempfile.mkdtemp(prefix="errstream-web-bench-"))
    local = None
    if url is None:
        local = LocalClickHouse(state_dir=home, port=free_port())
        local.up()
        url = local.client_url  # with the read-write login `up` created
    settings = Settings(clickhouse_url=url, clickhouse_database="errstream_web_bench", home=home)
    db = settings.clickhouse_database
    server = None
    try:
        ch = connect(settings, send_receive_timeout=3600)
        ch.command(f"DROP DATABASE IF EXISTS {db}")
        migrate(settings, ch)
        now = datetime.now(UTC)
        out(f"generating {events:,} counted and {raw:,} stored events over {days} days, {groups:,} issues")
        generate(ch, db, OCCURRENCES_SQL, events, 1_000_000, 1, now, days, groups, "counts")
        if raw:
            generate(ch, db, EVENTS_SQL, raw, 500_000, 2, now, days, groups, "raw events")
        for table in ("error_groups", "error_counts_1h"):  # the steady state background merges reach
            ch.command(f"OPTIMIZE TABLE {db}.{table} FINAL")
        fps = [r[0] for r in ch.query(f"SELECT fingerprint FROM {db}.error_groups GROUP BY fingerprint "
                                      "ORDER BY sum(events) DESC").result_rows]
        statuses = ["resolved", "ignored", "acknowledged", "investigating"]
        ch.insert(f"{db}.issue_status_history",
                  [[fp, statuses[i % 4], now - timedelta(hours=i % 48), "bench", ""] for i, fp in enumerate(fps[::10])],
                  column_names=["fingerprint", "status", "changed_at", "changed_by", "note"])
        token = TokenStore(settings.tokens_path).create("bench", "viewer")
        port = free_port()
        server = uvicorn.Server(server_config(settings, "127.0.0.1", port, app=create_app(settings, live=False)))
        import threading

        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        rng = random.Random(1)
        picks = [fps[min(len(fps) - 1, int(len(fps) ** rng.random()) - 1)] for _ in range(requests)]  # log-uniform
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            second = c.get("/api/v1/issues", params={"limit": 25}).json()["next_cursor"]
            latest = [c.get(f"/api/v1/issues/{fp}").json().get("latest_event_id") for fp in picks]
            latest = [e or next(x for x in latest if x) for e in latest]  # an issue without stored events: another
            cases: list[tuple[str, Callable[[int], str]]] = [
                ("stream: open, last seen", lambda i: "/api/v1/issues?status=open&limit=25"),
                ("stream: all, by events", lambda i: "/api/v1/issues?sort=events&limit=25"),
                ("stream: by trend", lambda i: "/api/v1/issues?sort=trend&limit=25"),
                ("stream: service filter", lambda i: f"/api/v1/issues?service={SERVICES[i % len(SERVICES)]}&limit=25"),
                ("stream: second page (cursor)", lambda i: f"/api/v1/issues?limit=25&cursor={second}"),
                ("stream: text in title", lambda i: f"/api/v1/issues?q=failure%20%23{i % groups}&limit=25"),
                ("issue page: /issues/{fp}", lambda i: f"/api/v1/issues/{picks[i]}"),
                ("issue page: its events", lambda i: f"/api/v1/issues/{picks[i]}/events?limit=25"),
                ("stream: search syntax", lambda i: f"/api/v1/issues?query=is%3Aunresolved+level%3Aerror+service%3A"
                                                    f"{SERVICES[i % len(SERVICES)]}+failure&limit=25"),
                ("issue page: similar issues", lambda i: f"/api/v1/issues/{picks[i]}/similar"),
                ("event: older/newer/position", lambda i: f"/api/v1/events/{latest[i]}/nav"),
                ("releases: 24 h", lambda i: "/api/v1/releases?since=24h"),
            ]
            for _, fn in cases:  # one warm-up each (connection, caches of the first query)
                c.get(fn(0))
            timings = [Timing(name, _time(c, fn, requests)) for name, fn in cases]
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        out(f"web API latency over HTTP ({requests} requests each, one client, loopback; "
            f"{os.cpu_count()} CPUs, load average {load} at the end):")
        for t in timings:
            out(t.line())
        return timings
    finally:
        if server is not None:
            server.should_exit = True
        if local is not None:
            local.down()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--raw", type=int, default=200_000)
    ap.add_argument("--groups", type=int, default=5_000)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--url", help="an existing ClickHouse (default: an embedded one on a free port)")
    a = ap.parse_args()
    run_web_bench(a.events, a.raw, a.groups, a.requests, a.days, a.url)


if __name__ == "__main__":
    main()
