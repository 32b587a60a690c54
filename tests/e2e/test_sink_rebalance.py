"""Sinks join and leave (SIGTERM and SIGKILL) within seconds while events flow: every event counted once.

Short form in CI (one round of six membership changes in about seven seconds); the long form is
``ERRSTREAM_REBALANCE_ROUNDS=50 .venv/bin/python -m pytest tests/e2e/test_sink_rebalance.py -q``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from producers.publisher import ErrorPublisher
from producers.synthetic import synthetic_event
from tests.support.kafka import group_lag
from tests.support.services import STORE_EVERYTHING_ENV, Service, wait_for

pytestmark = pytest.mark.e2e

ROUNDS = int(os.environ.get("ERRSTREAM_REBALANCE_ROUNDS", "1"))
RATE = 800  # events/s
PER_ROUND = 8_000


def _publish_steadily(settings: Settings, events: list, rate: float) -> None:
    async def go() -> None:
        async with ErrorPublisher(settings) as pub:
            t0 = time.monotonic()
            for i in range(0, len(events), 80):
                await pub.publish_many(events[i:i + 80])
                ahead = t0 + (i + 80) / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)

    asyncio.run(go())


def _sigterm(svc: Service) -> None:
    if svc.proc and svc.proc.poll() is None:
        os.killpg(svc.proc.pid, signal.SIGTERM)  # not waited for: the next change overlaps its shutdown


def _counts(ch: Client, settings: Settings) -> dict[tuple[str, datetime], int]:
    try:
        rows = ch.query(f"SELECT service, minute, sum(events) FROM {settings.clickhouse_database}.error_counts_1m "
                        "GROUP BY service, minute").result_rows
    except Exception:  # noqa: BLE001 - the schema appears when a sink starts
        return {}
    return {(s, m.replace(tzinfo=UTC)): int(n) for s, m, n in rows}


def test_sinks_joining_and_leaving_within_seconds_count_every_event_exactly_once(
    settings: Settings, ch: Client, tmp_path: Path,
) -> None:
    settings = settings.model_copy(update={"sink_batch_rows": 300, "sink_batch_seconds": 0.2})
    rng = random.Random(13)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    total = PER_ROUND * ROUNDS
    events = [synthetic_event(rng, timestamp=start + timedelta(milliseconds=100 * i)) for i in range(total)]
    expected = Counter((e.service, e.timestamp.replace(second=0, microsecond=0)) for e in events)

    worker = Service("worker", settings, tmp_path, STORE_EVERYTHING_ENV).start()
    sinks = [Service("sink", settings, tmp_path).start()]
    gone: list[Service] = []
    publisher = threading.Thread(target=_publish_steadily, args=(settings, events, RATE))
    try:
        wait_for(lambda: _counts(ch, settings) is not None and sinks[0].output().count("newly assigned") > 0,
                 lambda ok: ok, 60, "the first sink to own its partitions")
        publisher.start()
        for _ in range(ROUNDS):
            # six changes in about seven seconds: join, join, SIGTERM, SIGKILL, join, SIGTERM
            for change in ("join", "join", "term", "kill", "join", "term"):
                time.sleep(rng.uniform(0.6, 1.6))
                if change == "join" or len(sinks) == 1:
                    sinks.append(Service("sink", settings, tmp_path).start())
                    continue
                victim = sinks.pop(rng.randrange(len(sinks)))
                gone.append(victim)
                if change == "kill":
                    victim.kill()
                else:
                    _sigterm(victim)
        publisher.join()

        def where() -> str:
            got = _counts(ch, settings)
            return (f"counted {sum(got.values())} of {total}; "
                    + "\n".join(s.output()[-1500:] for s in sinks))

        wait_for(lambda: sum(_counts(ch, settings).values()), lambda n: n >= total, 240, f"{total} events counted",
                 diagnostics=where)
        # every sink committed all it read, after inserting it: a late duplicate would be stored by now
        wait_for(lambda: group_lag(settings, settings.sink_group, [settings.topic_processed]), lambda n: n == 0, 120,
                 "the sinks to commit everything", diagnostics=where)
        assert _counts(ch, settings) == dict(expected)
        db = settings.clickhouse_database
        rows, distinct = ch.query(f"SELECT count(), uniqExact(event_id) FROM {db}.error_events").result_rows[0]
        assert (rows, distinct) == (total, total)  # one row per event, without FINAL
        for svc in gone:
            if svc.proc is not None:
                code = svc.proc.wait(15)
                # SIGTERM before the signal handlers are installed (still importing) ends it the default way
                started = "Subscribed to topic" in svc.output()
                assert code in (0, -signal.SIGKILL) or (code == -signal.SIGTERM and not started), (
                    code, svc.output()[-2000:])
    finally:
        for svc in [worker, *sinks, *gone]:
            svc.stop()
