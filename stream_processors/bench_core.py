"""``errstream bench core``: one core's throughput for validate + scrub + fingerprint + sample.

It runs ``EventProcessor.process`` — the exact per-event code of the worker,
without Kafka — on pre-serialised events whose stacks are 20 frames deep and
come from real raised exceptions, and prints events/s (wall clock and CPU
time: on a shared machine CPU time is the steadier figure), per-event latency
percentiles and peak memory. ``--profile`` adds cProfile's top functions.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import random
import resource
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from producers.capture import event_from_exception
from schemas.events import Breadcrumb, ErrorEvent, RequestInfo, User
from stream_processors.pipeline import EventProcessor

STACK_DEPTH = 20


def _call_chain(depth: int) -> list[Callable[[int, random.Random], None]]:
    """``depth`` distinct functions, each calling the next, like a web stack (handler → service → repo …)."""
    source = "\n".join(
        f"def layer_{i}(fail, rng):\n    return {'_fail' if i == depth - 1 else f'layer_{i + 1}'}(fail, rng)\n"
        for i in range(depth)
    )
    namespace: dict[str, object] = {"_fail": _fail, "__name__": "shop.layers"}
    exec(compile(source, "/srv/shop/app/layers.py", "exec"), namespace)  # noqa: S102 - generated bench code
    return [namespace[f"layer_{i}"] for i in range(depth)]  # type: ignore[misc]


def _fail(fail: int, rng: random.Random) -> None:
    _FAILURES[fail](rng)


def _missing_key(rng: random.Random) -> None:
    raise KeyError(f"user_{rng.randint(1, 10_000)}")


def _declined(rng: random.Random) -> None:
    raise ValueError(f"card declined for customer{rng.randint(1, 99)}@example.com amount {rng.randint(1, 900)}.00")


def _refused(rng: random.Random) -> None:
    raise ConnectionRefusedError(f"connect to 10.0.{rng.randint(0, 9)}.{rng.randint(1, 254)}:5432 refused")


_FAILURES = (_missing_key, _declined, _refused)


def make_events(count: int, *, seed: int = 11, start: datetime | None = None) -> list[bytes]:
    """``count`` serialised events, each with a ~20-frame in-app stack, tags, user, request, breadcrumbs."""
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    levels = ("error", "error", "warning", "critical", "info")
    layers = _call_chain(STACK_DEPTH - 3)  # + make_events, _fail and the raiser = STACK_DEPTH frames
    out: list[bytes] = []
    for i in range(count):
        fail = i % len(_FAILURES)
        try:
            layers[0](fail, rng)
        except Exception as exc:  # noqa: BLE001 - every failure is the event we want
            event: ErrorEvent = event_from_exception(
                exc, service=("billing", "checkout", "auth")[i % 3], level=levels[i % len(levels)],
                release="1.4.2", timestamp=start + timedelta(milliseconds=i * 7),
                event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                user=User(id=f"u{rng.randint(1, 500)}", email=f"user{rng.randint(1, 500)}@example.com",
                          ip_address=f"192.0.2.{rng.randint(1, 254)}"),
                tags={"region": rng.choice(["eu-west-1", "us-east-1"]), "http.status": "500"},
                request=RequestInfo(method="POST", url=f"https://shop.example.com/pay?order={i}&token=abc",
                                    headers={"Authorization": "Bearer abc.def", "Accept": "application/json"}),
                breadcrumbs=[Breadcrumb(category="http", message=f"GET /api/items/{rng.randint(1, 999)}",
                                        data={"status": 200}) for _ in range(5)],
                context={"runtime": {"name": "CPython", "version": "3.11"}},
            )
            out.append(event.model_dump_json().encode())
    return out


@dataclass
class BenchResult:
    events: int
    wall_s: float
    cpu_s: float
    latencies_us: list[float]
    peak_rss_mb: float
    stack_frames: int
    counts: dict[str, int]

    def report(self) -> str:
        lat = sorted(self.latencies_us)
        q = statistics.quantiles(lat, n=1000)
        lines = [
            f"events            {self.events:,} (stacks of {self.stack_frames} frames)",
            f"throughput (wall) {self.events / self.wall_s:,.0f} events/s",
            f"throughput (CPU)  {self.events / self.cpu_s:,.0f} events/s per core",
            (f"latency per event p50 {q[499]:.1f} us  p90 {q[899]:.1f} us  p99 {q[989]:.1f} us  "
             f"p99.9 {q[998]:.1f} us  max {lat[-1]:.1f} us"),
            f"peak RSS          {self.peak_rss_mb:,.1f} MB",
            f"outcomes          {self.counts}",
        ]
        return "\n".join(lines)


def _pin_to_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def run(count: int = 50_000, *, profile: bool = False, top: int = 15) -> tuple[BenchResult, str, str]:
    """(result, pinning note, profile text or '')."""
    pinned = _pin_to_one_core()
    payloads = make_events(count)
    frames = len(ErrorEvent.model_validate_json(payloads[0]).exceptions[-1].stacktrace)
    processor = EventProcessor()
    for raw in payloads[:1_000]:  # warm caches and imports, then start clean
        EventProcessor().process(raw)
    latencies: list[float] = []
    perf = time.perf_counter_ns
    process = processor.process
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for raw in payloads:
        t = perf()
        process(raw)
        latencies.append((perf() - t) / 1_000)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    profile_text = ""
    if profiler:
        profiler.disable()
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(top)
        profile_text = buf.getvalue()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = BenchResult(count, wall, cpu, latencies, peak, frames, dict(processor.counts))
    return result, pinned, profile_text
