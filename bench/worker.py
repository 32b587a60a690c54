"""``errstream bench worker``: CPU per event of a real ``errstream worker`` process.

Starts a worker on fresh topics of the configured broker, waits until it is
idle (joined, recovered), publishes ``events`` synthetic events at once,
waits until all of them are on the processed topic and the worker is idle
again, and divides the CPU time the worker process spent in between by the
number of events. The figure includes everything the worker does per event:
Kafka consumption and production, processing and (unless disabled)
detection with its changelogs. It is the number that decides how many events
per second one core sustains; ``bench alerts`` shows the latency that follows.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from errstream.local.process import cpu_seconds
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from producers.publisher import ErrorPublisher
from producers.synthetic import synthetic_event

_TOPIC_FIELDS = ("topic_errors", "topic_dlq", "topic_alerts", "topic_processed", "topic_issue_status", "app_id")


@dataclass
class WorkerCost:
    events: int
    detection: bool
    cpu_seconds: float
    wall_seconds: float

    def lines(self) -> list[str]:
        return [
            f"events            {self.events:,} (detection {'on' if self.detection else 'off'})",
            (f"worker CPU        {self.cpu_seconds:.2f} s = {self.cpu_seconds / self.events * 1e6:,.0f} µs per event "
             f"-> {self.events / self.cpu_seconds:,.0f} events/s per core"),
            f"wall time         {self.wall_seconds:.1f} s from the first publish to the last processed record",
        ]


def _wait_idle(pid: int, window: float = 2.0, timeout: float = 180.0) -> float:
    """CPU seconds once the process used under 5 % of a core for ``window`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window)
        after = cpu_seconds(pid)
        if after - before < 0.05 * window:
            return after
    raise RuntimeError("the worker never became idle")


async def _processed(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs())
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_processed, p) for p in range(settings.topic_partitions)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def _publish(settings: Settings, payloads: list[bytes]) -> None:
    async with ErrorPublisher(settings) as publisher:
        await publisher.publish_many_raw(payloads)


def run_worker_bench(settings: Settings, events: int = 20_000, detection: bool = True,
                     log_dir: Path = Path(".")) -> WorkerCost:
    run = f"benchw{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(update={**{f: f"{run}.{f}" for f in _TOPIC_FIELDS}, "detection_enabled": detection})
    asyncio.run(ensure_topics(s))
    env = dict(os.environ, ERRSTREAM_KAFKA_BOOTSTRAP=s.kafka_bootstrap,
               ERRSTREAM_DETECTION_ENABLED=str(detection).lower(),
               **{f"ERRSTREAM_{f.upper()}": str(getattr(s, f)) for f in _TOPIC_FIELDS})
    rng = random.Random(1)
    now = datetime.now(UTC)
    payloads = [synthetic_event(rng, timestamp=now).model_dump_json().encode() for _ in range(events)]
    with open(log_dir / f"{run}-worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "errstream.cli", "worker"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        time.sleep(5)  # joining the group and the first recovery are not the per-event cost
        cpu_before = _wait_idle(worker.pid)
        start = time.monotonic()
        asyncio.run(_publish(s, payloads))
        while asyncio.run(_processed(s)) < events:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {log.name}")
            time.sleep(0.5)
        wall = time.monotonic() - start
        cpu_after = _wait_idle(worker.pid)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
    return WorkerCost(events, detection, cpu_after - cpu_before, wall)
