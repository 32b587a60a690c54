"""A replayed sink batch changes nothing, in every table fed by the insert.

The sink re-sends a batch with the same ``insert_deduplication_token`` after a
crash. ClickHouse must drop the block in ``error_events`` and — through
``deduplicate_blocks_in_dependent_materialized_views`` — in every table a
materialized view fills from ``error_occurrences_in``, including tables added
by later migrations (found from ``system.tables``, not listed by hand).
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from sinks.clickhouse.migrate import migrate
from tests.e2e.analytics import data


def _mv_targets(ch: Client, db: str, source: str) -> list[str]:
    queries = ch.query(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND engine = 'MaterializedView'",
        parameters={"db": db},
    ).result_rows
    targets = []
    for (q,) in queries:
        if re.search(rf"\bFROM\s+{db}\.{source}\b", q):
            m = re.search(rf"\bTO\s+{db}\.(\w+)", q)
            assert m, q
            targets.append(m.group(1))
    return sorted(targets)


def _snapshot(ch: Client, db: str, tables: list[str]) -> dict[str, tuple[int, ...]]:
    snap: dict[str, tuple[int, ...]] = {}
    for t in tables:
        snap[t] = tuple(int(x) for x in ch.query(f"SELECT count() FROM {db}.{t}").result_rows[0])
    snap["events"] = tuple(
        int(x) for x in ch.query(f"SELECT sum(events), sum(stored) FROM {db}.error_counts_1m").result_rows[0])
    snap["groups"] = tuple(
        int(x) for x in ch.query(f"SELECT sum(events), uniqCombinedMerge(12)(users) FROM {db}.error_groups").result_rows[0])
    return snap


def test_replayed_batch_is_dropped_by_every_dependent_table(settings: Settings, ch: Client) -> None:
    db = settings.clickhouse_database
    migrate(settings, ch)
    targets = _mv_targets(ch, db, "error_occurrences_in")
    assert {"error_counts_1m", "error_groups"} <= set(targets)
    tables = ["error_events", *targets]

    batch = data.build(datetime.now(UTC)).processed[:200]  # issue A: 1 in 4 stored, 20 users
    data.insert_batch(ch, db, batch, "sink/processed/0/0-199")
    first = _snapshot(ch, db, tables)
    assert first["events"] == (200, 50) and first["groups"] == (200, 20)

    data.insert_batch(ch, db, batch, "sink/processed/0/0-199")  # the replay after a crash
    assert _snapshot(ch, db, tables) == first

    data.insert_batch(ch, db, batch, "sink/processed/0/200-399")  # other offsets: a real new batch
    again = _snapshot(ch, db, tables)
    assert again["events"] == (400, 100) and again["groups"] == (400, 20)
    assert all(again[t][0] > first[t][0] for t in tables)


def test_a_replayed_batch_counts_its_recovery_once(settings: Settings, ch: Client) -> None:
    db = settings.clickhouse_database
    migrate(settings, ch)
    assert _mv_targets(ch, db, "recovery_occurrences_in") == ["recovery_counts_1m"]
    batch = copy.deepcopy(data.build(datetime.now(UTC)).processed[:100])
    for i, record in enumerate(batch):
        record["event"]["recovery"] = {"attempted": True, "successful": i % 4 != 0, "method": "retry",
                                       "attempts": 2, "duration_ms": 100 + i}

    def counts() -> tuple[int, ...]:
        return tuple(int(x) for x in ch.query(
            f"SELECT sum(episodes), sum(successful), sum(recovery_ms_n), sum(recovery_ms_sum)"
            f" FROM {db}.recovery_counts_1m").result_rows[0])

    data.insert_batch(ch, db, batch, "sink/processed/1/0-99")
    first = counts()
    assert first == (100, 75, 75, sum(100 + i for i in range(100) if i % 4))
    data.insert_batch(ch, db, batch, "sink/processed/1/0-99")  # the replay after a crash
    assert counts() == first
    data.insert_batch(ch, db, batch, "sink/processed/1/100-199")  # other offsets: a real new batch
    assert counts() == tuple(2 * n for n in first)
