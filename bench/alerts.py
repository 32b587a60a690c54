"""Alert latency under load: wall time from publishing an error to its alert on the alerts topic.

Starts a real ``errstream worker`` on fresh topics of the configured broker,
publishes realistic background traffic at ``rate`` events/s (synthetic events
with real stacks, re-stamped with the current time so event-time windows see
live traffic), and every ``1/probes`` s an event of a never-seen fingerprint,
whose ``new_issue`` alert is timed. The probe's path is the full one: errors →
process → processed topic → detection → alerts, two Kafka hops.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import harness
from errstream.local.process import cpu_seconds
from errstream_core.settings import Settings
from schemas.events import ErrorEvent


@dataclass
class AlertLatencyResult:
    rate_target: int
    workers: int = 1
    rate_achieved: float = 0.0
    seconds: float = 0.0
    probes: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, of probes that alerted
    worker_cpu_seconds: float = 0.0
    worker_max_rss_mb: float = 0.0
    log: str = ""

    def figures(self) -> dict[str, object]:
        lat = harness.percentiles(self.latencies)
        return {"rate_achieved": round(self.rate_achieved), "seconds": round(self.seconds, 1), "probes": self.probes,
                "probes_alerted": len(self.latencies),
                "alert_latency_ms": {k: round(v * 1000) if v == v else None for k, v in lat.items()},
                "worker_cpu_seconds": round(self.worker_cpu_seconds, 2), "worker_peak_rss_mb": self.worker_max_rss_mb}

    def lines(self) -> list[str]:
        lat = {k: v * 1000 for k, v in harness.percentiles(self.latencies).items()}
        return [
            (f"background load   {self.rate_achieved:,.0f} events/s achieved (target {self.rate_target:,}) "
             f"for {self.seconds:.1f} s"),
            f"probes            {self.probes} published, {len(self.latencies)} alerted",
            (f"alert latency     p50 {lat['p50']:.0f} ms   p90 {lat['p90']:.0f} ms   p99 {lat['p99']:.0f} ms   "
             f"max {lat['max']:.0f} ms"),
            (f"worker(s)         {self.workers} process(es), {self.worker_cpu_seconds:.1f} CPU s in all from start to the "
             f"last probe (startup included), peak RSS {self.worker_max_rss_mb:.0f} MB (largest process)"),
            f"worker logs       {self.log}",
        ]


def _probe(i: int, run: str) -> ErrorEvent:
    return ErrorEvent(service="latency-probe", message=f"probe {i}", fingerprint=["latency-probe", run, str(i)])


async def _measure(s: Settings, rate: int, seconds: float, probes_per_second: float,
                   result: AlertLatencyResult) -> None:
    producer = AIOKafkaProducer(**s.kafka_client_kwargs(), linger_ms=5, compression_type="zstd")
    consumer = AIOKafkaConsumer(s.topic_alerts, **s.kafka_client_kwargs(), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    published: dict[str, float] = {}
    alerted: dict[str, float] = {}

    async def read_alerts() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for msgs in batch.values():
                for m in msgs:
                    a = orjson.loads(m.value)
                    if a["kind"] == "new_issue" and a.get("trigger_event_id") in published:
                        alerted.setdefault(a["trigger_event_id"], now)

    async def probe(i: int) -> str:
        event = _probe(i, s.app_id)
        key = str(event.event_id)
        published[key] = time.time()
        await producer.send(s.topic_errors, event.model_dump_json().encode())
        return key

    reader = asyncio.create_task(read_alerts())
    try:
        # ready: the worker joined its group and answers a probe
        ready = await probe(-1)
        deadline = time.monotonic() + 180
        while ready not in alerted:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not raise the first probe's alert within 180 s")
            await asyncio.sleep(0.2)
        del published[ready], alerted[ready]
        payloads = harness.Payloads()
        tick = 0.01
        sent = 0
        start = time.monotonic()
        next_probe = start
        i = 0
        pending: list[asyncio.Future] = []
        while (elapsed := time.monotonic() - start) < seconds:
            stamp = payloads.now()
            due = int(elapsed * rate) - sent
            for _ in range(max(0, due)):
                pending.append(await producer.send(s.topic_errors, payloads.next(stamp)))
                sent += 1
            if time.monotonic() >= next_probe:
                await probe(i)
                i += 1
                next_probe += 1 / probes_per_second
            if len(pending) > 5_000:
                await asyncio.gather(*pending)
                pending.clear()
            await asyncio.sleep(tick)
        await asyncio.gather(*pending)
        result.seconds = time.monotonic() - start
        result.rate_achieved = sent / result.seconds
        result.probes = i
        settle = time.monotonic() + 30
        while len(alerted) < len(published) and time.monotonic() < settle:
            await asyncio.sleep(0.2)
        result.latencies = [alerted[k] - published[k] for k in published if k in alerted]
    finally:
        reader.cancel()
        await consumer.stop()
        await producer.stop()


def run_alert_latency_bench(settings: Settings, rate: int = 5_000, seconds: float = 30.0,
                            probes_per_second: float = 10.0, workers: int = 1) -> AlertLatencyResult:
    run = harness.new_run("alerts")
    s = harness.fresh_settings(settings, run)
    harness.create_topics(s)
    log_dir = harness.run_dir(settings, run)
    result = AlertLatencyResult(rate_target=rate, workers=workers, log=str(log_dir))
    try:
        with harness.spawn("worker", s, log_dir, workers) as procs:  # one consumer group: partitions shared out
            asyncio.run(_measure(s, rate, seconds, probes_per_second, result))
            result.worker_cpu_seconds = sum(cpu_seconds(p.pid) for p in procs)
            result.worker_max_rss_mb = max(harness.peak_rss_mb(p.pid) or 0.0 for p in procs)
    finally:
        harness.delete_run_topics(s, run)
    return result
