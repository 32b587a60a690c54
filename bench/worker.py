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
import time
from dataclasses import dataclass

from bench import harness
from errstream_core.settings import Settings


@dataclass
class WorkerCost:
    events: int
    detection: bool
    cpu_seconds: float
    wall_seconds: float

    def figures(self) -> dict[str, object]:
        return {"cpu_seconds": round(self.cpu_seconds, 3), "cpu_us_per_event": round(self.cpu_seconds / self.events * 1e6, 1),
                "wall_seconds": round(self.wall_seconds, 2)}

    def lines(self) -> list[str]:
        return [
            f"events            {self.events:,} (detection {'on' if self.detection else 'off'})",
            (f"worker CPU        {self.cpu_seconds:.2f} s = {self.cpu_seconds / self.events * 1e6:,.0f} µs per event "
             f"-> {self.events / self.cpu_seconds:,.0f} events/s per core"),
            f"wall time         {self.wall_seconds:.1f} s from the first publish to the last processed record",
        ]


def run_worker_bench(settings: Settings, events: int = 20_000, detection: bool = True) -> WorkerCost:
    run = harness.new_run("worker")
    s = harness.fresh_settings(settings, run, detection_enabled=detection)
    harness.create_topics(s)
    payloads = harness.Payloads()
    warm = 20
    try:
        with harness.spawn("worker", s, harness.run_dir(settings, run)) as (worker,):
            # joining the group and the first recovery are not the per-event cost
            asyncio.run(harness.publish_raw(s, s.topic_errors, payloads.batch(warm)))
            harness.wait_until(lambda: harness.records_in(s, [s.topic_processed]), lambda n: n >= warm, 180,
                               "the warm-up events processed", [worker], interval=0.5)
            cpu_before = harness.wait_cpu_idle(worker.pid)
            batch = payloads.batch(events)
            start = time.monotonic()
            asyncio.run(harness.publish_raw(s, s.topic_errors, batch))
            harness.wait_until(lambda: harness.records_in(s, [s.topic_processed]), lambda n: n >= warm + events,
                               max(180.0, events / 100), "every event processed", [worker], interval=0.5)
            wall = time.monotonic() - start
            cpu_after = harness.wait_cpu_idle(worker.pid)
    finally:
        harness.delete_run_topics(s, run)
    return WorkerCost(events, detection, cpu_after - cpu_before, wall)
