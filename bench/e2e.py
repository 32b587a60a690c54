"""``errstream bench e2e``: the whole local stack, from publish to queryable in ClickHouse.

Real ``errstream worker`` (``--workers`` of them, one consumer group) and
``errstream sink`` processes on fresh topics and a fresh database, on the
broker and ClickHouse of the settings when they answer (``errstream local up``)
or on a broker and embedded ClickHouse started for the run. Three figures:

(a) **Drain**: ``events`` realistic ~1.2 kB events (real stacks) published at
    once; events/s from the first publish until ``sum(events)`` in
    ``error_counts_1m`` counts all of them, and its ratio to a plain aiokafka
    publish of the same payloads to a scratch topic in the same run (what the
    broker and a Python producer alone reach on this machine).
(b) **Latency**: a steady ``rate`` of the same events for ``seconds``, with a
    probe event every ``probe_interval`` s; produce-to-queryable p50/p90/p99 =
    from handing the probe to the producer until it is counted in
    ``error_counts_1m`` (each probe has a service of its own; ClickHouse is
    polled every ``poll_interval`` s, which bounds the resolution).
(c) **Memory**: peak RSS (VmHWM) of each worker, the sink, the broker and the
    ClickHouse endpoint — since each started; for a broker or ClickHouse that
    ``errstream local up`` started earlier that includes its earlier life.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from bench import harness
from errstream.local.process import cpu_seconds
from errstream.local.roles import RoleProcess
from errstream_core.settings import Settings
from schemas.events import ErrorEvent
from sinks.clickhouse.client import connect


@dataclass
class E2EResult:
    events: int
    rate: int
    seconds: float
    workers: int
    event_bytes: float = 0.0
    raw_publish_per_s: float = 0.0
    drain_publish_s: float = 0.0
    drain_s: float = 0.0
    worker_cpu_us_per_event: float | None = None
    sink_cpu_us_per_event: float | None = None
    # the servers' share of the drain (local processes only): with the roles, where the machine's cores go
    broker_cpu_us_per_event: float | None = None
    clickhouse_cpu_us_per_event: float | None = None
    broker_compile_us_per_event: float | None = None  # of broker_cpu: its JIT compiler threads
    # the benchmark's own polling of error_counts_1m during the drain, taken out of clickhouse_cpu
    clickhouse_polling_us_per_event: float | None = None
    steady_sent: int = 0
    steady_s: float = 0.0
    probes: int = 0
    latencies: list[float] = field(default_factory=list)
    all_counted: bool = False
    counted: int = 0
    expected: int = 0
    rss_mb: dict[str, float | None] = field(default_factory=dict)
    logs: str = ""

    @property
    def drain_per_s(self) -> float:
        return self.events / self.drain_s if self.drain_s else 0.0

    @property
    def ratio(self) -> float:
        return self.drain_per_s / self.raw_publish_per_s if self.raw_publish_per_s else 0.0

    def figures(self) -> dict[str, Any]:
        lat = harness.percentiles(self.latencies)
        known = [v for v in self.rss_mb.values() if v is not None]
        return {
            "event_bytes": round(self.event_bytes), "drain_events_per_s": round(self.drain_per_s),
            "drain_seconds": round(self.drain_s, 2), "raw_publish_events_per_s": round(self.raw_publish_per_s),
            "drain_to_raw_ratio": round(self.ratio, 3),
            "worker_cpu_us_per_event": self.worker_cpu_us_per_event, "sink_cpu_us_per_event": self.sink_cpu_us_per_event,
            "broker_cpu_us_per_event": self.broker_cpu_us_per_event,
            "clickhouse_cpu_us_per_event": self.clickhouse_cpu_us_per_event,
            "broker_compile_us_per_event": self.broker_compile_us_per_event,
            "clickhouse_polling_us_per_event": self.clickhouse_polling_us_per_event,
            "steady_events_per_s": round(self.steady_sent / self.steady_s) if self.steady_s else 0,
            "probes": self.probes, "probes_queryable": len(self.latencies),
            "latency_ms": {k: round(v * 1000) if v == v else None for k, v in lat.items()},
            "peak_rss_mb": self.rss_mb, "peak_rss_total_mb": round(sum(known), 1),
            "all_counted": self.all_counted, "counted": self.counted, "expected": self.expected,
        }

    def lines(self) -> list[str]:
        f = self.figures()
        lat = f["latency_ms"]
        rss = "  ".join(f"{k} {v:.0f}" if v is not None else f"{k} ?" for k, v in self.rss_mb.items())
        parts = [(name, f[f"{name}_cpu_us_per_event"]) for name in ("worker", "sink", "broker", "clickhouse")]
        known = [(name, us) for name, us in parts if us is not None]
        notes = {"broker": f" (JIT {self.broker_compile_us_per_event:.0f})" if self.broker_compile_us_per_event else "",
                 "clickhouse": (f" (+{self.clickhouse_polling_us_per_event:.0f} the benchmark's polling)"
                                if self.clickhouse_polling_us_per_event else "")}
        cpu = ("; CPU per event: " + ", ".join(f"{name} {us:.0f} µs{notes.get(name, '')}" for name, us in known)
               + (f" (sum {sum(us for _, us in known):.0f} µs)" if len(known) > 2 else "")) if known else ""
        return [
            (f"drain             {self.events:,} events of ~{f['event_bytes']:,} B published at once: "
             f"{f['drain_events_per_s']:,} events/s until all counted in error_counts_1m ({self.drain_s:.1f} s; "
             f"{self.workers} worker(s), 1 sink){cpu}"),
            (f"raw publish       {f['raw_publish_events_per_s']:,} events/s (aiokafka, zstd as the SDK, same payloads, acks=all); "
             f"drain/raw = {f['drain_to_raw_ratio']:.2f}"),
            (f"steady load       {f['steady_events_per_s']:,} events/s achieved (target {self.rate:,}) for "
             f"{self.steady_s:.1f} s; {f['probes_queryable']}/{self.probes} probes queryable"),
            (f"produce→queryable p50 {lat['p50']} ms  p90 {lat['p90']} ms  p99 {lat['p99']} ms  max {lat['max']} ms"),
            f"peak RSS (MB)     {rss}  total {f['peak_rss_total_mb']:,.0f}",
            (f"check             {self.counted:,}/{self.expected:,} events counted"
             + ("" if self.all_counted else "  (NOT all counted)")),
            f"logs              {self.logs}",
        ]


POLLS = [0]  # how many times _counted asked ClickHouse


def _counted(client: Any, db: str) -> int:
    POLLS[0] += 1
    try:
        return int(client.query(f"SELECT sum(events) FROM {db}.error_counts_1m").result_rows[0][0] or 0)
    except Exception:  # noqa: BLE001 - the sink creates the schema on start; until then nothing is counted
        return 0


def _probe(run: str, i: int) -> bytes:
    return ErrorEvent(service=f"probe-{run}-{i}", message=f"latency probe {i}",
                      fingerprint=["latency-probe", run]).model_dump_json().encode()


async def _steady(s: Settings, payloads: harness.Payloads, rate: int, seconds: float, probe_interval: float,
                  published: dict[str, float]) -> tuple[int, float, int]:
    """(events sent, seconds, probes) of ``rate`` events/s for ``seconds`` with a probe every ``probe_interval``."""
    producer = AIOKafkaProducer(**s.kafka_client_kwargs(), linger_ms=5, compression_type="zstd", acks="all",
                                max_batch_size=262_144)
    await producer.start()
    try:
        sent = probes = 0
        pending: list[asyncio.Future[Any]] = []
        start = time.monotonic()
        next_probe = start
        while (elapsed := time.monotonic() - start) < seconds:
            stamp = payloads.now()
            for _ in range(int(elapsed * rate) - sent):
                pending.append(await producer.send(s.topic_errors, payloads.next(stamp)))
                sent += 1
            if time.monotonic() >= next_probe:
                published[f"probe-{s.app_id}-{probes}"] = time.time()
                pending.append(await producer.send(s.topic_errors, _probe(s.app_id, probes)))
                probes += 1
                next_probe += probe_interval
            if len(pending) > 2_000:
                await asyncio.gather(*pending)
                pending.clear()
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - start
        await asyncio.gather(*pending)
        return sent, elapsed, probes
    finally:
        await producer.stop()


class _ProbeWatcher(threading.Thread):
    """Polls ClickHouse for counted probes and notes when each first appears."""

    def __init__(self, s: Settings, interval: float) -> None:
        super().__init__(daemon=True)
        self.client = connect(s)
        self.db = s.clickhouse_database
        self.prefix = f"probe-{s.app_id}-"
        self.interval = interval
        self.seen: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            started = time.time()
            rows = self.client.query(
                f"SELECT DISTINCT service FROM {self.db}.error_counts_1m WHERE startsWith(service, {{p:String}})",
                parameters={"p": self.prefix}).result_rows
            for (service,) in rows:
                self.seen.setdefault(service, started)
            self.done.wait(max(0.0, self.interval - (time.time() - started)))


def run_e2e(settings: Settings, events: int = 50_000, rate: int = 5_000, seconds: float = 20.0,
            workers: int = 1, probe_interval: float = 0.1, poll_interval: float = 0.1,
            progress: Callable[[str], None] = print) -> E2EResult:
    run = harness.new_run("e2e")
    rdir = harness.run_dir(settings, run)
    result = E2EResult(events=events, rate=rate, seconds=seconds, workers=workers, logs=str(rdir))
    with harness.local_stack(settings, rdir / "stack") as stack:
        s = harness.fresh_settings(stack.settings, run, database=True)
        scratch = f"{run}.raw-publish"
        harness.create_topics(s)
        harness.create_topics(s, [scratch])
        payloads = harness.Payloads()
        result.event_bytes = payloads.mean_bytes
        drain = payloads.batch(events)
        progress(f"raw aiokafka publish of {events:,} events to {scratch}…")
        result.raw_publish_per_s = events / asyncio.run(harness.publish_raw(s, scratch, drain))
        client = connect(s)
        db = s.clickhouse_database
        with harness.spawn("worker", s, rdir, workers) as worker_procs, harness.spawn("sink", s, rdir) as sink_procs:
            procs: list[RoleProcess] = [*worker_procs, *sink_procs]
            progress(f"{workers} worker(s) and a sink started (logs in {rdir}); warming up…")
            warm = 20
            asyncio.run(harness.publish_raw(s, s.topic_errors, payloads.batch(warm)))
            harness.wait_until(lambda: _counted(client, db), lambda n: n >= warm, 300, "the warm-up events counted",
                               procs)
            for pid in [p.pid for p in procs] + ([stack.kafka_pid] if stack.kafka_pid is not None else []):
                harness.wait_cpu_idle(pid, window=1.0, share=0.2)

            # what one poll of the counts costs ClickHouse: the drain polls ten times a second, and that is the
            # benchmark's work, not the pipeline's
            poll_cost = 0.0
            if stack.clickhouse_pid is not None:
                c0 = cpu_seconds(stack.clickhouse_pid)
                for _ in range(50):
                    _counted(client, db)
                poll_cost = (cpu_seconds(stack.clickhouse_pid) - c0) / 50
            progress(f"drain: {events:,} events at once…")
            drain = payloads.batch(events)  # stamped now: counts land in the current minutes
            servers = {name: pid for name, pid in (("broker", stack.kafka_pid), ("clickhouse", stack.clickhouse_pid))
                       if pid is not None}
            cpu0 = {p.pid: cpu_seconds(p.pid) for p in procs}
            server_cpu0 = {name: cpu_seconds(pid) for name, pid in servers.items()}
            compile0 = harness.compile_cpu_seconds(stack.kafka_pid) if stack.kafka_pid is not None else 0.0
            t0 = time.monotonic()
            polls0 = POLLS[0]
            result.drain_publish_s = asyncio.run(harness.publish_raw(s, s.topic_errors, drain))
            harness.wait_until(lambda: _counted(client, db), lambda n: n >= warm + events,
                               max(300.0, events / 200), "the drained events counted", procs, interval=0.1)
            result.drain_s = time.monotonic() - t0
            cpu = {p.pid: cpu_seconds(p.pid) - cpu0[p.pid] for p in procs}
            result.worker_cpu_us_per_event = round(sum(cpu[p.pid] for p in worker_procs) / events * 1e6, 1)
            result.sink_cpu_us_per_event = round(sum(cpu[p.pid] for p in sink_procs) / events * 1e6, 1)
            server_cpu = {name: round((cpu_seconds(pid) - server_cpu0[name]) / events * 1e6, 1)
                          for name, pid in servers.items()}
            result.broker_cpu_us_per_event = server_cpu.get("broker")
            if "clickhouse" in server_cpu:
                polling = round((POLLS[0] - polls0) * poll_cost / events * 1e6, 1)
                result.clickhouse_polling_us_per_event = polling
                result.clickhouse_cpu_us_per_event = round(server_cpu["clickhouse"] - polling, 1)
            if stack.kafka_pid is not None:
                result.broker_compile_us_per_event = round(
                    (harness.compile_cpu_seconds(stack.kafka_pid) - compile0) / events * 1e6, 1)
            # the steady phase starts from an idle sink: everything it was given is inserted and committed
            harness.wait_caught_up(s, s.sink_group, [s.topic_processed], 120, procs)

            progress(f"steady: {rate:,} events/s for {seconds:g} s, a probe every {probe_interval * 1000:.0f} ms…")
            published: dict[str, float] = {}
            watcher = _ProbeWatcher(s, poll_interval)
            watcher.start()
            try:
                result.steady_sent, result.steady_s, result.probes = asyncio.run(
                    _steady(s, payloads, rate, seconds, probe_interval, published))
                try:
                    harness.wait_until(lambda: len(watcher.seen), lambda n: n >= result.probes, 60,
                                       "the probes queryable", procs)
                except RuntimeError as exc:
                    progress(f"warning: {exc}")
            finally:
                watcher.done.set()
                watcher.join(10)
            result.latencies = [watcher.seen[k] - t for k, t in published.items() if k in watcher.seen]
            result.expected = warm + events + result.steady_sent + result.probes
            try:
                result.counted = harness.wait_until(lambda: _counted(client, db), lambda n: n >= result.expected,
                                                    120, "every event counted", procs)
            except RuntimeError as exc:
                progress(f"warning: {exc}")
                result.counted = _counted(client, db)
            result.all_counted = result.counted == result.expected
            for i, p in enumerate(worker_procs):
                result.rss_mb[f"worker{i if workers > 1 else ''}"] = harness.peak_rss_mb(p.pid)
            result.rss_mb["sink"] = harness.peak_rss_mb(sink_procs[0].pid)
            result.rss_mb["broker"] = harness.peak_rss_mb(stack.kafka_pid)
            result.rss_mb["clickhouse"] = harness.peak_rss_mb(stack.clickhouse_pid)
        client.command(f"DROP DATABASE IF EXISTS {db}")
        harness.delete_run_topics(s, run)
    return result
