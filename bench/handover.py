"""Hand-over time: how long partitions with lag stop being consumed when a worker or a sink joins or leaves.

While events flow at a steady rate, one role (``worker`` or ``sink``) runs with
one process; the benchmark then makes three changes — a second process joins, one
stops gracefully (SIGTERM), one is SIGKILLed — and samples every consumer
group's committed offsets every 0.1 s. A partition *stalls* while it has lag
and its committed offset does not move; the figure per change is the longest
stall of any partition of the group in the window after the change (a join
is observed until the group is stable with the new member, whose start-up time
is printed as "joined after", then for the window). The quiet
line is the same measure without any change: the floor set by the batch and
commit intervals.

    python -m bench.handover                      # local Kafka and ClickHouse, both roles
    python -m bench.handover --role sink --rate 500 --observe 20

Prints one line per (role, change, group) and a JSON summary at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from errstream_core.settings import Settings
from errstream_core.topics import by_fingerprint_topic, ensure_topics
from producers.publisher import ErrorPublisher
from schemas.events import ErrorEvent, ExceptionInfo

SAMPLE_EVERY = 0.1  # seconds


@dataclass(frozen=True)
class Group:
    name: str  # what the line says
    group_id: str
    topic: str


def groups_of(role: str, s: Settings) -> list[Group]:
    if role == "worker":
        return [Group("worker processing", f"{s.app_id}-process", s.topic_errors),
                Group("worker detection", s.app_id, by_fingerprint_topic(s))]
    return [Group("sink", s.sink_group, s.topic_processed)]


class Role:
    """One `errstream worker|sink` process; output in a log file under ``log_dir``."""

    def __init__(self, role: str, s: Settings, log_dir: Path) -> None:
        env = {**os.environ, "ERRSTREAM_KAFKA_BOOTSTRAP": s.kafka_bootstrap, "ERRSTREAM_CLICKHOUSE_URL": s.clickhouse_url,
               "ERRSTREAM_CLICKHOUSE_DATABASE": s.clickhouse_database, "ERRSTREAM_TOPIC_ERRORS": s.topic_errors,
               "ERRSTREAM_TOPIC_PROCESSED": s.topic_processed, "ERRSTREAM_TOPIC_ALERTS": s.topic_alerts,
               "ERRSTREAM_TOPIC_DLQ": s.topic_dlq, "ERRSTREAM_TOPIC_ISSUE_STATUS": s.topic_issue_status,
               "ERRSTREAM_TOPIC_ISSUE_MERGES": s.topic_issue_merges,
               "ERRSTREAM_APP_ID": s.app_id, "ERRSTREAM_SINK_GROUP": s.sink_group,
               "ERRSTREAM_TOPIC_PARTITIONS": str(s.topic_partitions), "ERRSTREAM_HOME": str(log_dir)}
        with open(log_dir / f"{role}-{time.monotonic_ns()}.log", "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "errstream.cli", role], stdout=out,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Traffic(threading.Thread):
    """``rate`` events a second over 40 issues until stopped."""

    def __init__(self, s: Settings, rate: int) -> None:
        super().__init__(daemon=True)
        self.s, self.rate, self.done = s, rate, threading.Event()

    async def _run(self) -> None:
        async with ErrorPublisher(self.s) as pub:
            i = 0
            while not self.done.is_set():
                t = time.monotonic()
                batch = []
                for _ in range(max(1, self.rate // 10)):
                    i += 1
                    batch.append(ErrorEvent(service="bench", message="handover", fingerprint=["bench", str(i % 40)],
                                            exceptions=[ExceptionInfo(type="RuntimeError", value="handover")]))
                await pub.publish_many(batch)
                await asyncio.sleep(max(0.0, t + 0.1 - time.monotonic()))

    def run(self) -> None:
        asyncio.run(self._run())


class Positions:
    """Committed and end offsets of the groups' partitions, from one admin client and one consumer."""

    def __init__(self, s: Settings, groups: list[Group]) -> None:
        self.s, self.groups = s, groups
        self.admin = AIOKafkaAdminClient(**s.kafka_client_kwargs())
        self.consumer = AIOKafkaConsumer(**s.kafka_client_kwargs(), group_id=None)

    async def __aenter__(self) -> Positions:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def members(self, group_id: str) -> tuple[str, int]:
        """(state, member count) of a consumer group."""
        try:
            described = await self.admin.describe_consumer_groups([group_id])
        except KafkaError:
            return ("unknown", 0)
        # DescribeGroupsResponse: (error_code, group_id, state, protocol_type, protocol, members, ...)
        group = described[0].groups[0]
        return (group[2], len(group[5]))

    async def read(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(group name, partition) → (committed, end)."""
        out = {}
        for g in self.groups:
            try:
                offsets = await self.admin.list_consumer_group_offsets(g.group_id)
            except KafkaError:  # a fresh broker has no group coordinator for a moment: no sample this time
                return {}
            committed = {tp.partition: m.offset for tp, m in offsets.items() if tp.topic == g.topic}
            parts = [TopicPartition(g.topic, p) for p in range(self.s.topic_partitions)]
            for tp, end in (await self.consumer.end_offsets(parts)).items():
                out[(g.name, tp.partition)] = (max(committed.get(tp.partition, 0), 0), end)
        return out


async def _stalls(s: Settings, groups: list[Group], seconds: float, members: int | None) -> dict[str, float]:
    since: dict[tuple[str, int], float] = {}  # partition → when its current stall began
    last: dict[tuple[str, int], int] = {}
    worst = {g.name: 0.0 for g in groups}
    start = time.monotonic()
    async with Positions(s, groups) as positions:
        # a join is observed until every group is stable with the new member, then ``seconds`` more
        settled = None if members else start
        while (now := time.monotonic()) < min((settled or now) + seconds, start + 180):
            for key, (committed, end) in (await positions.read()).items():
                if committed != last.get(key) or committed >= end:
                    since.pop(key, None)
                else:
                    since.setdefault(key, now)
                last[key] = committed
                worst[key[0]] = max(worst[key[0]], now - since.get(key, now))
            if settled is None:
                states = [await positions.members(g.group_id) for g in groups]
                if all(state == ("Stable", members) for state in states):
                    settled = now
            await asyncio.sleep(max(0.0, SAMPLE_EVERY - (time.monotonic() - now)))
    out = {name: round(v, 1) for name, v in worst.items()}
    if members:
        out["joined after"] = round((settled or now) - start, 1)
    return out


def longest_stalls(s: Settings, groups: list[Group], seconds: float, members: int | None = None) -> dict[str, float]:
    """Per group: the longest time any partition had lag without its committed offset moving."""
    return asyncio.run(_stalls(s, groups, seconds, members))


async def _caught_up(s: Settings, groups: list[Group], within: float) -> None:
    async with Positions(s, groups) as positions:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            pos = await positions.read()
            if pos and all(end - committed < 500 for committed, end in pos.values()):
                return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{[g.name for g in groups]} did not catch up within {within} s")


def wait_caught_up(s: Settings, groups: list[Group], within: float = 180) -> None:
    """Until every partition's lag is below a second or two of traffic (the role is consuming)."""
    asyncio.run(_caught_up(s, groups, within))


def bench_role(role: str, s: Settings, log_dir: Path, observe: float) -> dict[str, dict[str, float]]:
    """One role through quiet, join, SIGTERM and SIGKILL; the other role runs one process throughout."""
    other = Role("sink" if role == "worker" else "worker", s, log_dir)
    first = Role(role, s, log_dir)
    groups = groups_of(role, s)
    results: dict[str, dict[str, float]] = {}
    try:
        wait_caught_up(s, groups)
        results["quiet"] = longest_stalls(s, groups, observe / 2)
        second = Role(role, s, log_dir)
        results["join"] = longest_stalls(s, groups, observe, members=2)
        threading.Thread(target=second.stop, daemon=True).start()  # SIGTERM, measured while it shuts down
        results["graceful stop"] = longest_stalls(s, groups, observe)
        wait_caught_up(s, groups)
        second = Role(role, s, log_dir)
        longest_stalls(s, groups, 1, members=2)  # let the join settle before the crash
        second.stop(signal.SIGKILL)
        results["SIGKILL"] = longest_stalls(s, groups, observe + s.worker_session_timeout_seconds)
        for change, per_group in results.items():
            for name, secs in per_group.items():
                what = name if name == "joined after" else f"{name}: longest stall"
                print(f"{role:6s} {change:14s} {what:34s} {secs:5.1f} s", flush=True)
        return results
    finally:
        first.stop()
        other.stop()


@contextlib.contextmanager
def servers(work: Path) -> Iterator[tuple[str, str]]:
    """Kafka and ClickHouse as the tests pick them: ERRSTREAM_KAFKA_BOOTSTRAP / ERRSTREAM_CLICKHOUSE_URL, else
    local ones (ClickHouse with the read-write login it creates: the sink must be able to log in)."""
    from errstream.local.servers import clickhouse_server, kafka_server

    with kafka_server(work / "kafka") as bootstrap, clickhouse_server(work / "clickhouse") as url:
        yield bootstrap, url


def main(argv: list[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=["worker", "sink", "both"], default="both")
    ap.add_argument("--rate", type=int, default=300, help="events per second during the run")
    ap.add_argument("--observe", type=float, default=20.0, help="seconds observed after each change")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="errstream-handover-") as tmp, servers(Path(tmp)) as (bootstrap, url):
        out = {}
        for role in (["worker", "sink"] if args.role == "both" else [args.role]):
            run = uuid.uuid4().hex[:8]
            s = Settings(kafka_bootstrap=bootstrap, clickhouse_url=url, clickhouse_database=f"handover_{run}",
                         topic_errors=f"h{run}.errors", topic_dlq=f"h{run}.errors.dlq", topic_alerts=f"h{run}.alerts",
                         topic_processed=f"h{run}.processed", topic_issue_status=f"h{run}.issue-status",
                         topic_issue_merges=f"h{run}.issue-merges",
                         app_id=f"h{run}-errstream", sink_group=f"h{run}-sink")
            asyncio.run(ensure_topics(s))
            traffic = Traffic(s, args.rate)
            traffic.start()
            try:
                out[role] = bench_role(role, s, Path(tmp), args.observe)
            finally:
                traffic.done.set()
                traffic.join()
        print(json.dumps(out))
        return out


if __name__ == "__main__":
    main()
