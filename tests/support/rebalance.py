"""The rebalance scenario: workers and sinks join and leave (SIGTERM, SIGKILL) every second or two while
events flow; afterwards the outcome holds every count, row and alert, to be compared with the truth.

Shared by ``tests/e2e/test_rebalance.py`` (one broker) and ``tests/e2e/test_cluster_rebalance.py`` (three
brokers, one of them down for most of the changes).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from errstream_core.settings import Settings
from errstream_core.topics import by_fingerprint_topic, by_service_topic, by_trace_topic
from producers.publisher import ErrorPublisher
from schemas.events import ErrorEvent
from sinks.clickhouse.client import connect
from tests.support.alerts import query_rows
from tests.support.detection import error
from tests.support.kafka import group_lag, publish_until_acknowledged, read_records, read_to_end
from tests.support.services import STORE_EVERYTHING_ENV, Service, wait_for

ROUNDS = int(os.environ.get("ERRSTREAM_REBALANCE_ROUNDS", "6"))
RATE = int(os.environ.get("ERRSTREAM_REBALANCE_RATE", "150"))  # events per second while the group changes
MARKS = [10, 50, 100, 200, 500, 1_000, 2_000, 5_000]
ISSUES = 12 + 4 * ROUNDS  # a new issue appears every few seconds, some while a worker is killed
SERVICES = ["billing", "orders", "search"]
WORKER_ENV = {
    **STORE_EVERYTHING_ENV,
    "ERRSTREAM_WORKER_SESSION_TIMEOUT_SECONDS": "6",  # the broker's minimum: SIGKILLs hand over sooner
    "ERRSTREAM_ALERT_THRESHOLD_COUNTS": orjson.dumps(MARKS).decode(),
    # every minute of the run stays open, so detection's per-service minute counts can be compared
    "ERRSTREAM_DETECT_GRACE_SECONDS": "3600",
}


class Traffic(threading.Thread):
    """Publishes ``RATE`` events a second until ``finish``; issue *k* first appears after *k* / ``ISSUES`` of
    the planned ``seconds``, and earlier issues are more frequent, so counts spread over several marks."""

    def __init__(self, settings: Settings, seconds: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.seconds, self.rng = settings, seconds, random.Random(seed)
        self.sent: list[ErrorEvent] = []
        self.failure: BaseException | None = None
        self.resends = 0
        self.done = threading.Event()

    def finish(self) -> None:
        self.done.set()
        self.join()

    def _batch(self, elapsed: float, size: int) -> list[ErrorEvent]:
        born = max(1, min(ISSUES, 1 + int(ISSUES * elapsed / self.seconds)))
        weights = [1.0 / (k + 1) for k in range(born)]
        picks = self.rng.choices(range(born), weights=weights, k=size - 1) + [born - 1]
        now = datetime.now(UTC)
        return [error(SERVICES[k % len(SERVICES)], f"issue{k}", now) for k in picks]

    async def _run(self) -> None:
        async with ErrorPublisher(self.settings) as pub:
            start = time.monotonic()
            while not self.done.is_set():
                elapsed = time.monotonic() - start
                batch = self._batch(elapsed, max(2, RATE // 10))
                self.resends += await publish_until_acknowledged(pub, batch)
                self.sent.extend(batch)
                await asyncio.sleep(max(0.0, start + elapsed + 0.1 - time.monotonic()))

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.failure = exc


@dataclass
class Pool:
    """Running `errstream worker` and `errstream sink` processes, changed one action at a time."""

    settings: Settings
    log_dir: Path
    workers: list[Service] = field(default_factory=list)
    sinks: list[Service] = field(default_factory=list)
    gone: list[Service] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def add(self, role: str) -> None:
        svc = Service(role, self.settings, self.log_dir, WORKER_ENV if role == "worker" else None).start()
        (self.workers if role == "worker" else self.sinks).append(svc)

    def remove(self, role: str, how: str, rng: random.Random) -> None:
        members = self.workers if role == "worker" else self.sinks
        svc = members.pop(rng.randrange(len(members)))
        svc.kill() if how == "kill" else svc.stop()
        self.gone.append(svc)

    def change(self, rng: random.Random) -> str:
        """Add or remove (SIGTERM or SIGKILL) a worker or a sink, keeping one to three of each."""
        role = rng.choice(["worker", "sink"])
        members = self.workers if role == "worker" else self.sinks
        grow = len(members) < 3 and (len(members) == 1 or rng.random() < 0.5)
        if grow:
            self.add(role)
            action = f"+{role}"
        else:
            how = rng.choice(["term", "kill"])
            self.remove(role, how, rng)
            action = f"{how} {role}"
        self.actions.append(action)
        return action

    def logs(self, tail: int = 1_500) -> str:
        return "\n".join(f"--- {s.command} {s.log.name}\n{s.output()[-tail:]}" for s in
                         [*self.workers, *self.sinks, *self.gone[-4:]])

    def stop(self) -> None:
        for svc in [*self.workers, *self.sinks]:
            svc.stop()


@dataclass
class Outcome:
    settings: Settings
    sent: list[ErrorEvent]
    actions: list[str]
    fingerprint_of: dict[str, str]  # event id → fingerprint the worker gave it
    detection_counts: dict[str, int]  # fingerprint → events detection's state counted
    service_minutes: dict[tuple[str, int], int]  # (service, minute) → events detection's service state counted
    alerts: list[dict[str, Any]]  # the alerts topic, duplicates included
    stored_alerts: list[tuple[str, str, str]]  # ClickHouse alerts FINAL: (alert_id, kind, dedup_key)
    minute_counts: dict[tuple[str, str], int]  # ClickHouse (service, minute) → sum(events)
    rows: tuple[int, int]  # ClickHouse error_events FINAL: count(), uniqExact(event_id)
    exited: list[str] = field(default_factory=list)  # members that ended on their own: role, log tail

    def true_counts(self) -> dict[str, int]:
        return dict(Counter(self.fingerprint_of[str(e.event_id)] for e in self.sent))

    def trace(self, fingerprint: str) -> str:
        """Where detection's count of an issue went wrong: the issue's signals on the by-fingerprint topic
        (bundle position → errors positions) and its state's history on the changelog (count, applied)."""
        s = self.settings
        signals = [(r.partition, r.offset, [(f[10], f[11]) for f in orjson.loads(r.value) if f[2] == fingerprint])
                   for r in read_records(s, by_fingerprint_topic(s))]
        history = [(r.offset, v["n"], v.get("a")) for r in read_records(s, f"{s.app_id}-detect-issues-changelog")
                   if r.key == fingerprint.encode() and r.value and (v := orjson.loads(r.value))]
        return (f"\nissue {fingerprint}: bundles {[b for b in signals if b[2]]}\nstate history {history}")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["kind"] == kind]


def settled(settings: Settings) -> dict[str, int]:
    """Uncommitted records per consumer group: all zero once every stage has caught up."""
    return {
        "worker": group_lag(settings, f"{settings.app_id}-process", [settings.topic_errors]),
        **{f"detection {topic.rsplit('-', 2)[-1]}": group_lag(settings, settings.app_id, [topic])
           for topic in (by_fingerprint_topic(settings), by_service_topic(settings), by_trace_topic(settings))},
        "sink": group_lag(settings, settings.sink_group, [settings.topic_processed]),
        "notify": group_lag(settings, f"{settings.sink_group}-alerts", [settings.topic_alerts]),
    }


def latest_values(settings: Settings, topic: str) -> dict[bytes, Any]:
    latest: dict[bytes, Any] = {}
    for key, value in read_to_end(settings, topic):
        if key is not None:
            latest[key] = None if value is None else orjson.loads(value)
    return latest


def collect(settings: Settings, sent: list[ErrorEvent], actions: list[str]) -> Outcome:
    processed = [orjson.loads(v) for _, v in read_to_end(settings, settings.topic_processed) if v]
    # detection's state as the next owner of each partition would recover it: the table's changelog
    state = latest_values(settings, f"{settings.app_id}-detect-issues-changelog")
    services = latest_values(settings, f"{settings.app_id}-detect-services-changelog")
    db = settings.clickhouse_database
    ch = connect(settings)
    try:
        stored = query_rows(ch, f"SELECT toString(alert_id), kind, dedup_key FROM {db}.alerts FINAL")
        minutes = query_rows(ch, f"SELECT service, toString(minute), sum(events) FROM {db}.error_counts_1m "
                                 "GROUP BY service, minute")
        rows = query_rows(ch, f"SELECT count(), uniqExact(event_id) FROM {db}.error_events FINAL")[0]
    finally:
        ch.close()
    return Outcome(
        settings=settings, sent=sent, actions=actions,
        fingerprint_of={p["event"]["event_id"]: p["fingerprint"] for p in processed},
        detection_counts={k.decode(): v["n"] for k, v in state.items() if isinstance(v, dict)},  # not checkpoints
        service_minutes={(k.decode(), int(m)): n for k, v in services.items() if isinstance(v, dict)  # not checkpoints
                         for m, n in v["w"]["o"].items()},
        alerts=[orjson.loads(v) for _, v in read_to_end(settings, settings.topic_alerts) if v],
        stored_alerts=[(str(a), str(k), str(d)) for a, k, d in stored],
        minute_counts={(str(s), str(m)): int(n) for s, m, n in minutes},
        rows=(int(rows[0]), int(rows[1])),
    )


def churn(settings: Settings, log_dir: Path, *, on_round: Callable[[int], None] | None = None) -> Outcome:
    """Two workers, two sinks and a notifier; ``ROUNDS`` membership changes 0.5–2 s apart while events flow.

    ``on_round(i)`` runs before change *i* (0-based) and once more with ``ROUNDS`` after the last: the
    cluster test stops and restarts a broker there.
    """
    rng = random.Random(int(os.environ.get("ERRSTREAM_REBALANCE_SEED", "13")))
    pool = Pool(settings, log_dir)
    notify = Service("notify", settings, pool.log_dir).start()
    try:
        for role in ("worker", "worker", "sink", "sink"):
            pool.add(role)
        # events from the start: the first hand-overs happen while the group forms
        traffic = Traffic(settings, seconds=4 + ROUNDS * 2.5, seed=rng.randrange(1 << 30))
        traffic.start()
        time.sleep(4)
        for i in range(ROUNDS):
            if on_round:
                on_round(i)
            pool.change(rng)
            time.sleep(rng.uniform(0.5, 2.0))
        if on_round:
            on_round(ROUNDS)
        time.sleep(2)
        traffic.finish()
        assert traffic.failure is None, traffic.failure
        # No traffic after this: a hole faust left at the end of a partition must be found by detection's
        # own timer (gaps.Positions.tails), not by a next record.
        wait_for(lambda: settled(settings), lambda lag: not any(lag.values()), 240,
                 f"every group to catch up after {pool.actions}", pool.logs)
        outcome = collect(settings, traffic.sent, pool.actions)
        outcome.exited = [f"{svc.command} (exit {svc.returncode()}): {svc.output()[-400:]}"
                          for svc in [*pool.workers, *pool.sinks] if not svc.running()]
        print(f"\nrebalance: {len(outcome.sent)} events, {len(outcome.true_counts())} issues, "  # noqa: T201
              f"{len(outcome.alerts)} alert records ({len({a['alert_id'] for a in outcome.alerts})} distinct), "
              f"resent batches: {traffic.resends}, changes: {', '.join(pool.actions)}")
        return outcome
    finally:
        pool.stop()
        notify.stop()
