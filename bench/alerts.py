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
import os
import random
import resource
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from producers.synthetic import synthetic_event
from schemas.events import ErrorEvent

STAMP = "2000-01-01T00:00:00Z"


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

    def percentile(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    def lines(self) -> list[str]:
        return [
            (f"background load   {self.rate_achieved:,.0f} events/s achieved (target {self.rate_target:,}) "
             f"for {self.seconds:.1f} s"),
            f"probes            {self.probes} published, {len(self.latencies)} alerted",
            (f"alert latency     p50 {self.percentile(0.5) * 1000:.0f} ms   p90 {self.percentile(0.9) * 1000:.0f} ms   "
             f"p99 {self.percentile(0.99) * 1000:.0f} ms   max {max(self.latencies, default=float('nan')) * 1000:.0f} ms"),
            (f"worker(s)         {self.workers} process(es), {self.worker_cpu_seconds:.1f} CPU s in all from start to "
             f"stop (startup included), peak RSS {self.worker_max_rss_mb:.0f} MB (largest process)"),
            f"worker log        {self.log}",
        ]


def _bench_settings(settings: Settings) -> Settings:
    run = f"bench{uuid.uuid4().hex[:8]}"
    return settings.model_copy(update={
        "topic_errors": f"{run}.errors", "topic_dlq": f"{run}.errors.dlq", "topic_alerts": f"{run}.alerts",
        "topic_processed": f"{run}.processed", "topic_issue_status": f"{run}.issue-status",
        "app_id": f"{run}-errstream",
    })


def _env(s: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("kafka_bootstrap", "topic_errors", "topic_dlq", "topic_alerts", "topic_processed",
                 "topic_issue_status", "app_id", "topic_partitions"):
        env[f"ERRSTREAM_{name.upper()}"] = str(getattr(s, name))
    return env


def _templates(n: int) -> list[bytes]:
    """Serialized synthetic events with a timestamp placeholder, re-stamped at publish time."""
    rng = random.Random(5)
    stamp = datetime(2000, 1, 1, tzinfo=UTC)
    return [synthetic_event(rng, timestamp=stamp).model_dump_json().encode().replace(
        stamp.isoformat().replace("+00:00", "Z").encode(), STAMP.encode()) for _ in range(n)]


def _probe(i: int, run: str) -> ErrorEvent:
    return ErrorEvent(service="latency-probe", message=f"probe {i}", fingerprint=["latency-probe", run, str(i)])


async def _measure(s: Settings, rate: int, seconds: float, probes_per_second: float,
                   result: AlertLatencyResult) -> None:
    producer = AIOKafkaProducer(**s.kafka_client_kwargs(), linger_ms=5, compression_type="lz4")
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
        templates = _templates(500)
        tick = 0.01
        sent = 0
        start = time.monotonic()
        next_probe = start
        i = 0
        pending: list[asyncio.Future] = []
        while (elapsed := time.monotonic() - start) < seconds:
            stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z").encode()
            due = int(elapsed * rate) - sent
            for _ in range(max(0, due)):
                payload = templates[sent % len(templates)].replace(STAMP.encode(), stamp, 1)
                pending.append(await producer.send(s.topic_errors, payload))
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
                            probes_per_second: float = 10.0, workers: int = 1,
                            log_dir: Path = Path(".")) -> AlertLatencyResult:
    s = _bench_settings(settings)
    asyncio.run(ensure_topics(s))
    log = log_dir / f"{s.app_id}-worker.log"
    result = AlertLatencyResult(rate_target=rate, workers=workers, log=str(log))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    with open(log, "wb") as out:
        for _ in range(workers):  # one consumer group: the partitions are shared out
            procs.append(subprocess.Popen([sys.executable, "-m", "errstream.cli", "worker"], stdout=out,
                                          stderr=subprocess.STDOUT, env=_env(s), start_new_session=True))
    try:
        asyncio.run(_measure(s, rate, seconds, probes_per_second, result))
    finally:
        for worker in procs:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in procs:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.worker_cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result.worker_max_rss_mb = after.ru_maxrss / 1024
    return result
