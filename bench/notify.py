"""Benchmark: alert published on `alerts` → webhook received, through the real `errstream notify`.

    .venv/bin/python -m bench.notify [--paced 300 --rate 50 --burst 2000]

Starts its own broker and embedded ClickHouse (free ports), a real HTTP
receiver and the notify process; prints latency percentiles for alerts
published at a steady rate, then throughput for a burst, and checks that the
`alerts` table and `alert_deliveries` hold exactly one row per alert.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from errstream.local.process import wait_for
from errstream.local.roles import RoleProcess
from errstream.local.servers import clickhouse_server, kafka_server
from errstream.local.webhook_receiver import WebhookReceiver
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from producers.synthetic import synthetic_alert
from sinks.clickhouse_client import connect


async def publish(settings: Settings, n: int, rate: float | None) -> None:
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all", linger_ms=1)
    await producer.start()
    try:
        start = time.monotonic()
        for i in range(n):
            if rate:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            alert = synthetic_alert(details={"published_at": time.time()})
            await producer.send(settings.topic_alerts, alert.model_dump_json().encode())
        await producer.flush()
    finally:
        await producer.stop()


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--paced", type=int, default=300, help="alerts published at --rate")
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--burst", type=int, default=2000, help="alerts published at once")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, kafka_server(Path(tmp) / "k") as bootstrap, \
            clickhouse_server(Path(tmp) / "c") as ch_url, WebhookReceiver() as receiver:
        run = uuid.uuid4().hex[:8]
        settings = Settings(kafka_bootstrap=bootstrap, clickhouse_url=ch_url, clickhouse_database=f"bench{run}",
                            topic_alerts=f"b{run}.alerts", topic_dlq=f"b{run}.dlq", app_id=f"b{run}",
                            topic_issue_status=f"b{run}.status", sink_group=f"b{run}")
        asyncio.run(ensure_topics(settings, [settings.topic_alerts]))
        hooks = [{"name": "bench", "url": receiver.url(), "rate_limit_per_minute": 1e6}]
        notify = RoleProcess("notify", settings, Path(tmp),
                             extra_env={"ERRSTREAM_ALERT_WEBHOOKS": orjson.dumps(hooks).decode()}).start()
        try:
            ch = connect(settings)
            wait_for(lambda: ch.command("EXISTS TABLE " + f"{settings.clickhouse_database}.alert_deliveries"),
                     lambda r: r == 1, 60, "the notify schema", diagnostics=notify.output)
            asyncio.run(publish(settings, 5, None))  # warm-up: group join, first fetch
            wait_for(lambda: len(receiver.requests), lambda n: n >= 5, 60, "warm-up")

            def latencies(skip: int) -> list[float]:
                return [(r.wall - r.body["details"]["published_at"]) * 1000 for r in receiver.requests[skip:]]

            asyncio.run(publish(settings, args.paced, args.rate))
            wait_for(lambda: len(receiver.requests), lambda n: n >= 5 + args.paced, 120, "paced alerts")
            lat = latencies(5)
            print(f"paced  {args.paced} alerts at {args.rate:g}/s: publish→webhook latency ms "
                  f"p50 {pct(lat, 50):.0f}  p95 {pct(lat, 95):.0f}  p99 {pct(lat, 99):.0f}  max {max(lat):.0f}")

            before = len(receiver.requests)
            t0 = time.monotonic()
            asyncio.run(publish(settings, args.burst, None))
            wait_for(lambda: len(receiver.requests), lambda n: n >= before + args.burst, 300, "burst alerts",
                     diagnostics=lambda: notify.output()[-3000:])
            elapsed = time.monotonic() - t0
            lat = latencies(before)
            print(f"burst  {args.burst} alerts at once: {args.burst / elapsed:.0f} alerts/s delivered+stored, "
                  f"latency ms p50 {pct(lat, 50):.0f} p99 {pct(lat, 99):.0f}")
            total = 5 + args.paced + args.burst
            db = settings.clickhouse_database
            stored = ch.query(f"SELECT count(), uniqExact(alert_id) FROM {db}.alerts").result_rows[0]
            rows = ch.query(f"SELECT count() FROM {db}.alert_deliveries WHERE outcome = 'delivered'").result_rows[0][0]
            print(f"check  alerts rows/unique {stored[0]}/{stored[1]} (expected {total}); delivered rows {rows}; "
                  f"webhook requests {len(receiver.requests)}")
        finally:
            notify.stop()


if __name__ == "__main__":
    main()
