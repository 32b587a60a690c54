"""What every errstream benchmark needs, once: a run of its own, real processes, waiting, figures, a record.

- **A run of its own**: :func:`fresh_settings` gives fresh topics, consumer groups
  and (optionally) a fresh database per run, so a benchmark never reads what an
  earlier run, a test or a user left on the same broker.
- **Real processes**: :func:`spawn` starts ``errstream <role>`` processes
  (:class:`errstream.local.roles.RoleProcess`) with their logs under
  ``ERRSTREAM_HOME/bench/<run>/``; :func:`local_stack` uses the broker and
  ClickHouse the settings name when they answer (``errstream local up``) and
  otherwise starts both on free ports for the run.
- **Waiting**: :func:`wait_until` polls and fails early, with the log tail, when a
  role it depends on exits; :func:`group_lag` / :func:`wait_caught_up` wait for a
  consumer group to reach the end of its topics; :func:`wait_cpu_idle` for a
  process to settle.
- **Figures**: :func:`percentiles` (nearest rank), :func:`peak_rss_mb`.
- **A record**: :func:`emit` prints the figures (or, with ``--json``, one JSON
  document) and appends them to ``ERRSTREAM_HOME/bench/results.jsonl`` with the
  date, machine and git commit, so runs can be compared over time.

Nothing is written into the current directory (unless ``ERRSTREAM_HOME`` points there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from errstream.local.clickhouse import LocalClickHouse
from errstream.local.kafka import LocalKafka
from errstream.local.process import cpu_seconds, free_port, free_port_pair, port_open, wait_for
from errstream.local.roles import RoleProcess
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics, know_topics, pipeline_topics
from producers.synthetic import synthetic_event

T = TypeVar("T")

RESULTS_FILE = "results.jsonl"


# --- a run of its own --------------------------------------------------------------------------------
def new_run(prefix: str = "bench") -> str:
    """A short name unique to one run: topic, group and database names start with it."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def fresh_settings(settings: Settings, run: str, *, database: bool = False, **update: Any) -> Settings:
    """``settings`` with topics, consumer groups (and with ``database``, the ClickHouse database) of ``run``."""
    fresh: dict[str, Any] = {
        "topic_errors": f"{run}.errors", "topic_dlq": f"{run}.errors.dlq", "topic_alerts": f"{run}.alerts",
        "topic_processed": f"{run}.processed", "topic_issue_status": f"{run}.issue-status",
        "topic_issue_merges": f"{run}.issue-merges", "topic_chains": "",
        "app_id": f"{run}-errstream", "sink_group": f"{run}-sink",
    }
    if database:
        fresh["clickhouse_database"] = f"errstream_{run}"
    return settings.model_copy(update={**fresh, **update})


def bench_home(settings: Settings) -> Path:
    """``ERRSTREAM_HOME/bench``: every file a benchmark writes goes below it."""
    path = Path(settings.home) / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_dir(settings: Settings, run: str) -> Path:
    path = bench_home(settings) / run
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _create_topics(settings: Settings, topics: Sequence[str] | None, timeout: float) -> None:
    await ensure_topics(settings, list(topics) if topics is not None else None)
    wanted = set(topics if topics is not None else pipeline_topics(settings))
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs())
    await consumer.start()
    try:  # until the broker's metadata has the new topics, producers wait and log about it
        deadline = time.monotonic() + timeout
        while not wanted <= await consumer.topics() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()


def create_topics(settings: Settings, topics: Sequence[str] | None = None, timeout: float = 30.0) -> None:
    """Create ``topics`` (default: the pipeline's) and wait until the broker's metadata lists them."""
    asyncio.run(_create_topics(settings, topics, timeout))


async def _delete_run_topics(settings: Settings, run: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(run)]
        if doomed:
            await admin.delete_topics(doomed)
        return len(doomed)
    finally:
        await admin.close()


def delete_run_topics(settings: Settings, run: str) -> int:
    """Delete the run's topics (its own and the worker's internal ones all start with ``run``)."""
    return asyncio.run(_delete_run_topics(settings, run))


# --- real processes ----------------------------------------------------------------------------------
@contextlib.contextmanager
def spawn(role: str, settings: Settings, log_dir: Path, count: int = 1, *, args: Sequence[str] = (),
          extra_env: dict[str, str] | None = None, stop_timeout: float = 30) -> Iterator[list[RoleProcess]]:
    """``count`` ``errstream <role>`` processes (one consumer group: they share the partitions), stopped after."""
    procs = [RoleProcess(role, settings, log_dir, args=args, extra_env=extra_env, name=f"{role}{i}").start()
             for i in range(count)]
    try:
        yield procs
    finally:
        for p in procs:
            p.stop(stop_timeout)


def check_running(procs: Iterable[RoleProcess]) -> None:
    """RuntimeError with the log tail of the first role that exited."""
    for p in procs:
        if not p.running():
            tail = "\n".join(p.output().splitlines()[-15:])
            raise RuntimeError(f"errstream {p.role} exited with {p.returncode()} (log {p.log}):\n{tail}")


def wait_until(fn: Callable[[], T], ok: Callable[[T], bool], timeout: float, what: str,
               procs: Sequence[RoleProcess] = (), interval: float = 0.2) -> T:
    """Poll ``fn`` until ``ok``; fails at once when one of ``procs`` has exited, instead of at the timeout."""
    def checked() -> T:
        check_running(procs)
        return fn()

    try:
        return wait_for(checked, ok, timeout, what, interval=interval)
    except AssertionError as exc:
        raise RuntimeError(str(exc)) from None


@dataclass
class Stack:
    """The broker and ClickHouse a run uses; pids when they are local processes (for their memory)."""

    settings: Settings
    kafka_pid: int | None = None
    clickhouse_pid: int | None = None
    started: list[str] = field(default_factory=list)  # what this run started (and stops)


def _kafka_up(settings: Settings) -> bool:
    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    return port_open(host or "127.0.0.1", int(port))


def _clickhouse_up(settings: Settings) -> bool:
    import httpx

    try:
        return httpx.get(f"{settings.clickhouse_url.rstrip('/')}/ping", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def local_stack(settings: Settings, state_dir: Path) -> Iterator[Stack]:
    """The broker and ClickHouse of ``settings`` if they answer (say from ``errstream local up``);
    otherwise a broker and an embedded ClickHouse on free ports under ``state_dir``, stopped and their data
    removed afterwards (their logs stay)."""
    kafka = LocalKafka(state_dir=Path(settings.home), cache_dir=settings.cache_dir, version=settings.kafka_version,
                       port=settings.local_kafka_port, partitions=settings.topic_partitions)
    clickhouse = LocalClickHouse(state_dir=Path(settings.home), port=settings.local_clickhouse_port)
    stack = Stack(settings)
    own: list[LocalKafka | LocalClickHouse] = []
    try:
        if _kafka_up(settings):
            stack.kafka_pid = kafka.process.pid() if settings.kafka_bootstrap == kafka.bootstrap else None
        else:
            kafka = LocalKafka(state_dir=state_dir, cache_dir=settings.cache_dir, version=settings.kafka_version,
                               port=free_port_pair(), partitions=settings.topic_partitions)
            own.append(kafka)
            stack.settings = stack.settings.model_copy(update={"kafka_bootstrap": kafka.up()})
            stack.kafka_pid = kafka.process.pid()
            stack.started.append("kafka")
        if _clickhouse_up(settings):
            same = settings.clickhouse_url.rstrip("/") == clickhouse.url
            stack.clickhouse_pid = clickhouse.process.pid() if same else None
        else:
            clickhouse = LocalClickHouse(state_dir=state_dir, port=free_port())
            own.append(clickhouse)
            clickhouse.up()
            stack.settings = stack.settings.model_copy(update={"clickhouse_url": clickhouse.client_url})
            stack.clickhouse_pid = clickhouse.process.pid()
            stack.started.append("clickhouse")
        yield stack
    finally:
        for server in reversed(own):
            server.down()
        # the logs stay with the run; the data of servers started for it would only fill the disk
        shutil.rmtree(state_dir / "kafka-data", ignore_errors=True)
        shutil.rmtree(state_dir / "chdb", ignore_errors=True)


# --- Kafka: payloads, publishing and consumer progress ---------------------------------------------------------
_STAMP = datetime(2000, 1, 1, tzinfo=UTC)
_STAMP_TEXT = b"2000-01-01T00:00:00Z"


class Payloads:
    """Serialized realistic events, re-stamped with a fresh event id and the current time for each publish.

    Generating each event from a raised exception costs more than publishing it;
    a few hundred templates with their id and timestamp replaced keep the
    producer from being the bottleneck while every published event stays unique
    (the sink drops repeated event ids) and current (counts are per minute).
    """

    def __init__(self, templates: int = 500, seed: int = 5) -> None:
        rng = random.Random(seed)
        self.templates: list[tuple[bytes, bytes]] = []
        for _ in range(templates):
            event = synthetic_event(rng, timestamp=_STAMP)
            raw = event.model_dump_json().encode()
            stamp = _STAMP.isoformat().replace("+00:00", "Z").encode()
            self.templates.append((raw.replace(stamp, _STAMP_TEXT), str(event.event_id).encode()))
        self.i = 0

    @staticmethod
    def now() -> bytes:
        return datetime.now(UTC).isoformat().replace("+00:00", "Z").encode()

    def next(self, stamp: bytes) -> bytes:
        raw, event_id = self.templates[self.i % len(self.templates)]
        self.i += 1
        return raw.replace(_STAMP_TEXT, stamp, 1).replace(event_id, str(uuid.uuid4()).encode(), 1)

    def batch(self, n: int) -> list[bytes]:
        stamp = self.now()
        return [self.next(stamp) for _ in range(n)]

    @property
    def mean_bytes(self) -> float:
        return sum(len(t) for t, _ in self.templates) / len(self.templates)


async def publish_raw(settings: Settings, topic: str, payloads: Sequence[bytes], *, linger_ms: int = 5,
                      compression: str | None = "zstd") -> float:
    """Publish ``payloads`` at once with a plain aiokafka producer (acks=all); seconds until all are acked."""
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), linger_ms=linger_ms, compression_type=compression,
                                acks="all", max_batch_size=262_144)
    await producer.start()
    try:
        await producer.partitions_for(topic)  # metadata of a just-created topic is not part of the rate
        start = time.perf_counter()
        futures = [await producer.send(topic, p) for p in payloads]
        await asyncio.gather(*futures)
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def end_offsets(settings: Settings, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """End offsets of ``topics``, created by :func:`create_topics` with ``settings.topic_partitions`` each."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs())
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.topic_partitions)]
        await know_topics(consumer, topics)
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def records_in(settings: Settings, topics: Sequence[str]) -> int:
    """Records written to ``topics`` so far (sum of end offsets: the topics are fresh)."""
    return sum(asyncio.run(end_offsets(settings, topics)).values())


async def _group_lag(settings: Settings, group: str, topics: Sequence[str]) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    ends = await end_offsets(settings, topics)
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
               for tp, end in ends.items())


def group_lag(settings: Settings, group: str, topics: Sequence[str]) -> int:
    """Records in ``topics`` that consumer group ``group`` has not committed yet."""
    return asyncio.run(_group_lag(settings, group, topics))


def wait_caught_up(settings: Settings, group: str, topics: Sequence[str], timeout: float,
                   procs: Sequence[RoleProcess] = ()) -> None:
    wait_until(lambda: group_lag(settings, group, topics), lambda lag: lag == 0, timeout,
               f"consumer group {group} to reach the end of {', '.join(topics)}", procs, interval=0.5)


# --- processes: CPU and memory -----------------------------------------------------------------------
def compile_cpu_seconds(pid: int) -> float:
    """CPU of a JVM's JIT compiler threads (Linux /proc): a fresh broker compiles while it serves, and a short
    benchmark would otherwise charge that one-off cost to every event."""
    total = 0.0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        if "Compiler" in stat[stat.find("(") + 1:stat.rfind(")")]:
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def wait_cpu_idle(pid: int, window: float = 2.0, timeout: float = 180.0, share: float = 0.05) -> float:
    """CPU seconds of ``pid`` once it used under ``share`` of a core for ``window`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window)
        after = cpu_seconds(pid)
        if after - before < share * window:
            return after
    raise RuntimeError(f"process {pid} never became idle")


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def peak_rss_mb(pid: int | None) -> float | None:
    """The process's peak resident memory since it started (Linux VmHWM), in MB; None if unknown."""
    kb = _status_kb(pid, "VmHWM") if pid else None
    return round(kb / 1024, 1) if kb is not None else None


# --- figures ------------------------------------------------------------------------------------------
def percentiles(values: Iterable[float], qs: Sequence[float] = (0.5, 0.9, 0.99)) -> dict[str, float]:
    """Nearest-rank percentiles keyed ``p50``, ``p90``, ``p99`` … (NaN for no values) and ``max``."""
    xs = sorted(values)
    out: dict[str, float] = {}
    for q in qs:
        key = f"p{q * 100:g}".replace(".", "")
        out[key] = xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))] if xs else float("nan")
    out["max"] = xs[-1] if xs else float("nan")
    return out


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def record(settings: Settings, bench: str, params: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    """Append one run to ``ERRSTREAM_HOME/bench/results.jsonl``; the record."""
    doc = _plain({
        "bench": bench, "at": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2), "commit": _git_commit(),
        "params": params, "figures": figures,
    })
    with open(bench_home(settings) / RESULTS_FILE, "a") as out:
        out.write(json.dumps(doc) + "\n")
    return doc


def emit(settings: Settings, bench: str, params: dict[str, Any], figures: dict[str, Any], lines: Iterable[str],
         as_json: bool = False, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Print the figures (``lines``, or the JSON record with ``as_json``) and record them."""
    doc = record(settings, bench, params, figures)
    if as_json:
        out(json.dumps(doc, indent=2))
    else:
        for line in lines:
            out(line)
        out(f"recorded in {bench_home(settings) / RESULTS_FILE}")
    return doc
