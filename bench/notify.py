"""Benchmark: alert published on `alerts` → webhook received, through the real `errstream notify`.

    errstream bench notify [--paced 300 --rate 50 --burst 2000]

On the configured broker and ClickHouse when they answer (else its own, on free
ports), with fresh topics and database, a real HTTP receiver and the notify
process, it prints latency percentiles for alerts published at a steady rate,
then throughput for a burst, and checks that the `alerts` table and
`alert_deliveries` hold exactly one row per alert.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench import harness
from errstream.local.webhook_receiver import WebhookReceiver
from errstream_core.settings import Settings
from producers.synthetic import synthetic_alert
from sinks.clickhouse.client import connect


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


def run_notify_bench(settings: Settings, paced: int = 300, rate: float = 50.0, burst: int = 2_000,
                     progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Figures of alerts published at ``rate`` (latency) and at once (throughput), with the storage check."""
    run = harness.new_run("notify")
    rdir = harness.run_dir(settings, run)
    with harness.local_stack(settings, rdir / "stack") as stack, WebhookReceiver() as receiver:
        s = harness.fresh_settings(stack.settings, run, database=True)
        harness.create_topics(s, [s.topic_alerts])
        hooks = [{"name": "bench", "url": receiver.url(), "rate_limit_per_minute": 1e6}]
        env = {"ERRSTREAM_ALERT_WEBHOOKS": orjson.dumps(hooks).decode()}
        ch = connect(s)
        db = s.clickhouse_database
        try:
            with harness.spawn("notify", s, rdir, extra_env=env) as procs:
                harness.wait_until(lambda: ch.command(f"EXISTS TABLE {db}.alert_deliveries"), lambda r: r == 1, 60,
                                   "the notify schema", procs)
                asyncio.run(publish(s, 5, None))  # warm-up: group join, first fetch
                harness.wait_until(lambda: len(receiver.requests), lambda n: n >= 5, 60, "warm-up", procs)

                def latencies(skip: int) -> dict[str, float]:
                    ms = [(r.wall - r.body["details"]["published_at"]) * 1000 for r in receiver.requests[skip:]]
                    return {k: round(v, 1) for k, v in harness.percentiles(ms, (0.5, 0.95, 0.99)).items()}

                progress(f"paced: {paced} alerts at {rate:g}/s…")
                asyncio.run(publish(s, paced, rate))
                harness.wait_until(lambda: len(receiver.requests), lambda n: n >= 5 + paced, 120, "paced alerts", procs)
                paced_ms = latencies(5)
                progress(f"burst: {burst} alerts at once…")
                before = len(receiver.requests)
                t0 = time.monotonic()
                asyncio.run(publish(s, burst, None))
                harness.wait_until(lambda: len(receiver.requests), lambda n: n >= before + burst, 300,
                                   "burst alerts", procs)
                elapsed = time.monotonic() - t0
                burst_ms = latencies(before)
                total = 5 + paced + burst
                stored = ch.query(f"SELECT count(), uniqExact(alert_id) FROM {db}.alerts").result_rows[0]
                delivered = ch.query(
                    f"SELECT count() FROM {db}.alert_deliveries WHERE outcome = 'delivered'").result_rows[0][0]
        finally:
            ch.command(f"DROP DATABASE IF EXISTS {db}")
            harness.delete_run_topics(s, run)
    return {"paced_latency_ms": paced_ms, "burst_alerts_per_s": round(burst / elapsed), "burst_latency_ms": burst_ms,
            "alerts_rows": stored[0], "alerts_unique": stored[1], "expected": total, "delivered_rows": delivered,
            "webhook_requests": len(receiver.requests)}


def report_lines(r: dict[str, Any], paced: int, rate: float, burst: int) -> list[str]:
    p, b = r["paced_latency_ms"], r["burst_latency_ms"]
    return [
        (f"paced  {paced} alerts at {rate:g}/s: publish→webhook latency ms p50 {p['p50']:.0f}  p95 {p['p95']:.0f}  "
         f"p99 {p['p99']:.0f}  max {p['max']:.0f}"),
        (f"burst  {burst} alerts at once: {r['burst_alerts_per_s']:,} alerts/s delivered+stored, latency ms "
         f"p50 {b['p50']:.0f} p99 {b['p99']:.0f}"),
        (f"check  alerts rows/unique {r['alerts_rows']}/{r['alerts_unique']} (expected {r['expected']}); "
         f"delivered rows {r['delivered_rows']}; webhook requests {r['webhook_requests']}"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--paced", type=int, default=300, help="alerts published at --rate")
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--burst", type=int, default=2000, help="alerts published at once")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    settings = Settings()
    result = run_notify_bench(settings, args.paced, args.rate, args.burst)
    harness.emit(settings, "notify", {"paced": args.paced, "rate": args.rate, "burst": args.burst}, result,
                 report_lines(result, args.paced, args.rate, args.burst), args.json)


if __name__ == "__main__":
    main()
