"""A three-broker KRaft cluster under a running pipeline: a broker lost mid-stream, then a rolling restart.

Heavy (three JVMs plus worker, sink and notify on a 2-core machine, about five minutes), so it runs only
when asked for:

    ERRSTREAM_TEST_CLUSTER=1 .venv/bin/python -m pytest tests/e2e/test_cluster.py -q -x

With the variable set, ``make test`` (and so CI) includes it; ``-m cluster`` selects it alone. Nothing is restarted by hand: the worker, sink and
notify processes started at the beginning must carry the stream through both disruptions.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.kafka import LocalKafka
from errstream_core.settings import Settings
from producers.publisher import ErrorPublisher
from tests.support.alerts import query_rows
from tests.support.cluster import CLUSTER_MARKS, counted, fully_replicated, leader_of_most, three_brokers
from tests.support.detection import error, of_kind, wait_alerts
from tests.support.kafka import publish_until_acknowledged
from tests.support.services import STORE_EVERYTHING_ENV, Service, wait_for

pytestmark = CLUSTER_MARKS

ISSUES_PER_PHASE = 4  # new issues start in each phase: before the loss, while a broker is down, while rolling


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with three_brokers(tmp_path_factory.mktemp("kafka3")) as kafka:
        yield kafka


@pytest.fixture(scope="module")
def kafka_bootstrap(cluster: LocalKafka) -> str:
    """Overrides the single broker of tests/conftest.py: `settings` and its topics live on the cluster."""
    return cluster.bootstrap


class _Stream:
    """Publishes about 100 events/s from a thread until stopped; an unacknowledged batch is sent again.

    A batch re-sent after a timeout may already be in the log: it carries the same event ids, and the
    pipeline must store each id once (that is part of what the test checks).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.issues = ISSUES_PER_PHASE
        self.sent: set[uuid.UUID] = set()
        self.resends = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with ErrorPublisher(self.settings, ack_timeout=20.0) as pub:
            i = 0
            while not self._stop.is_set():
                batch = [error("checkout", f"issue-{(i + k) % self.issues}", datetime.now(UTC)) for k in range(25)]
                i += 25
                self.resends += await publish_until_acknowledged(pub, batch)
                self.sent.update(e.event_id for e in batch)
                await asyncio.sleep(0.25)

    def start(self) -> _Stream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the publisher did not finish"


def _at_least(target: int) -> Callable[[int], bool]:
    return lambda n: n >= target


def test_broker_loss_and_rolling_restart_keep_counts_exact_and_alerts_single(
    cluster: LocalKafka, settings: Settings, ch: Client, tmp_path: Path
) -> None:
    db = settings.clickhouse_database
    env = {**STORE_EVERYTHING_ENV, "ERRSTREAM_WORKER_SESSION_TIMEOUT_SECONDS": "6"}
    services = [Service("worker", settings, tmp_path, env).start(), Service("sink", settings, tmp_path).start(),
                Service("notify", settings, tmp_path).start()]

    def logs() -> str:
        return "\n".join(f"--- {s.command}\n{s.output()[-3000:]}" for s in services)

    stream = _Stream(settings).start()
    try:
        wait_for(lambda: counted(ch, db), lambda n: n >= 300, 240, "the stream to reach ClickHouse", logs)

        # 1. SIGKILL the broker that leads most partitions; the pipeline must go on with two.
        victim = leader_of_most(settings)
        cluster.kill_node(victim)
        stream.issues = 2 * ISSUES_PER_PHASE
        at_kill = counted(ch, db)
        wait_for(lambda: counted(ch, db), lambda n: n >= at_kill + 1_000, 300,
                 f"progress while broker {victim} is down", logs)
        cluster.start_node(victim, timeout=180)
        wait_for(lambda: fully_replicated(settings), bool, 300, f"broker {victim} back in every ISR")

        # 2. Rolling restart: one broker at a time, the next only when every partition has 3 replicas again.
        stream.issues = 3 * ISSUES_PER_PHASE
        for node in (1, 2, 3):
            cluster.stop_node(node)
            before = counted(ch, db)
            wait_for(lambda: counted(ch, db), _at_least(before + 200), 300,
                     f"progress while broker {node} restarts", logs)
            cluster.start_node(node, timeout=180)
            wait_for(lambda: fully_replicated(settings), bool, 300, f"broker {node} back in every ISR")
    finally:
        stream.stop()

    expected = len(stream.sent)
    try:
        wait_for(lambda: counted(ch, db), lambda n: n >= expected, 300, f"all {expected} events counted", logs)
        events = query_rows(ch, f"SELECT count(), uniqExact(event_id) FROM {db}.error_events")[0]
        issues = {r[0] for r in query_rows(ch, f"SELECT DISTINCT fingerprint FROM {db}.error_counts_1m")}
        got = wait_alerts(settings, lambda a: {x["fingerprint"] for x in of_kind(a, "new_issue")} >= issues,
                          timeout=180, what="a new_issue alert for every issue")
        stored_alerts = wait_for(
            lambda: query_rows(ch, f"SELECT count() FROM {db}.alerts WHERE kind = 'new_issue'")[0][0],
            lambda n: n >= len(issues), 180, "notify to store the new_issue alerts", logs)
        final = counted(ch, db)
    finally:
        for svc in services:
            svc.stop()

    assert final == expected, f"error_counts_1m says {final} events, {expected} were published"
    assert tuple(events) == (expected, expected), "one error_events row per event"
    assert len(issues) == 3 * ISSUES_PER_PHASE
    new_issue = Counter(a["fingerprint"] for a in of_kind(got, "new_issue"))
    assert set(new_issue) == issues and set(new_issue.values()) == {1}, new_issue
    assert stored_alerts == len(issues)
    print(f"cluster test: {expected} events (resent batches: {stream.resends}), victim broker {victim}, "
          f"{len(issues)} issues, one new_issue alert each")
