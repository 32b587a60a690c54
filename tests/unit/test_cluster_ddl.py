"""ClickHouse cluster mode's DDL: generated from every migration, parsed by the real engine, same columns.

No ClickHouse cluster runs here (no Keeper, no second server). What these tests establish: every
statement cluster mode would send parses (the embedded engine's ``formatQuery``); run with the replication
and distribution swapped for what one embedded server can hold (``Replicated*MergeTree`` → ``*MergeTree``,
``Distributed`` → ``Merge`` over the local table), the cluster sequence applies cleanly and gives every
table and view exactly the columns of the single-node schema. What they cannot establish is listed in
docs/operations.md ("ClickHouse cluster mode: what is tested").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from errstream_core.settings import Settings
from sinks.clickhouse.cluster_ddl import (
    ClusterDDLError,
    ClusterLayout,
    client_settings,
    local_table,
    to_cluster,
)
from sinks.clickhouse.migrate import bootstrap_statements, cluster_layout, migration_files, statements_for

chdb_session = pytest.importorskip("chdb.session")

CLUSTER = "errstream_cluster"


def _all_statements(settings: Settings) -> list[str]:
    layout = cluster_layout(settings)
    boot = bootstrap_statements(settings)
    out = [s for b in boot for s in (to_cluster(b, layout) if layout else [b])]
    for _, sql in migration_files():
        out += statements_for(sql, settings, layout)
    return out


def _settings(db: str, cluster: str = "") -> Settings:
    return Settings(clickhouse_database=db, clickhouse_cluster=cluster)


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    session = chdb_session.Session()
    yield session
    session.cleanup()


def _declustered(sql: str) -> str:
    """What one embedded server can run in place of a cluster statement (for the column comparison only)."""
    sql = re.sub(rf"\s+ON CLUSTER {CLUSTER}\b", "", sql)
    sql = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?", r"\1(", sql)
    return re.sub(r"ENGINE = Distributed\(\w+, (\w+), (\w+), [^\n]*\)$", r"ENGINE = Merge(\1, '^\2$')", sql)


def _escaped(value: str) -> str:
    """Query parameters arrive in TSV's escaped form: a raw newline or backslash would end or change them."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def test_every_cluster_statement_parses(engine: Any) -> None:
    statements = _all_statements(_settings("errstream", CLUSTER))
    assert len(statements) > 30
    for sql in statements:
        try:
            formatted = engine.query("SELECT formatQuery({q:String})", "TSVRaw", params={"q": _escaped(sql)}).bytes().decode()
        except Exception as exc:  # the engine's message says where it failed
            raise AssertionError(f"does not parse:\n{sql}\n{exc}") from None
        # DDL runs on every server; a backfill (INSERT … SELECT) runs once, through the Distributed tables
        assert f"ON CLUSTER {CLUSTER}" in formatted or formatted.startswith("INSERT INTO"), sql


def test_cluster_layout_replicates_distributes_and_shards_by_fingerprint() -> None:
    statements = _all_statements(_settings("errstream", CLUSTER))
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    local = {re.match(r"CREATE TABLE IF NOT EXISTS errstream\.(\w+)", s).group(1): s  # type: ignore[union-attr]
             for s in creates if "Distributed(" not in s}
    distributed = {re.match(r"CREATE TABLE IF NOT EXISTS errstream\.(\w+)", s).group(1): s  # type: ignore[union-attr]
                   for s in creates if "Distributed(" in s}
    assert set(local) == {f"{t}_local" for t in distributed}
    for name, sql in local.items():
        engine = re.search(r"ENGINE = (\w+)", sql).group(1)  # type: ignore[union-attr]
        assert engine == "Null" or (engine.startswith("Replicated") and engine.endswith("MergeTree")), name
        if engine != "Null":
            assert "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" in sql
            assert "replicated_deduplication_window = 10000" in sql
        assert "non_replicated_deduplication_window" not in sql
    for table in ("error_events", "error_occurrences_in", "error_counts_1m", "error_counts_1h", "error_groups",
                  "issue_status", "issue_status_history", "alerts"):
        assert distributed[table].endswith(f"{table}_local, cityHash64(fingerprint))"), table
    assert distributed["error_chains"].endswith("cityHash64(trace_id))")
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', updated_at)" \
        in local["error_chains_local"]
    for sql in statements:
        if sql.startswith("CREATE MATERIALIZED VIEW"):  # fire on the shard's local insert, write locally
            assert re.search(r"TO errstream\.\w+_local AS", sql) and re.search(r"FROM errstream\.\w+_local\b", sql)
        if sql.startswith("CREATE OR REPLACE VIEW"):  # analysts' views read every shard
            assert "_local" not in sql


def test_single_node_and_cluster_define_the_same_columns(engine: Any) -> None:
    single, clustered = _settings("cmp_single"), _settings("cmp_cluster", CLUSTER)
    for sql in _all_statements(single):
        engine.query(sql)
    for sql in _all_statements(clustered):
        if not sql.startswith("INSERT INTO"):  # a backfill is data, not schema (and Merge tables take no writes)
            engine.query(_declustered(sql))

    def columns(db: str) -> dict[str, list[tuple[str, str]]]:
        rows = engine.query(
            f"SELECT table, name, type FROM system.columns WHERE database = '{db}' ORDER BY table, position",
            "JSONCompact").data()
        import json

        out: dict[str, list[tuple[str, str]]] = {}
        for table, name, typ in json.loads(rows)["data"]:
            out.setdefault(table, []).append((name, typ))
        return out

    one, many = columns("cmp_single"), columns("cmp_cluster")
    assert one, "the single-node schema was not created"
    for table, cols in one.items():
        assert many[table] == cols, f"{table}: the cluster's (distributed or view) columns differ"
        if f"{table}_local" in many:
            assert many[f"{table}_local"] == cols, f"{table}_local differs from the single-node {table}"
    assert set(many) - set(one) == {f"{t}_local" for t in one if f"{t}_local" in many}


def test_a_future_migration_is_translated_or_refused() -> None:
    layout = ClusterLayout(CLUSTER, frozenset({"deploys"}))
    create = ("CREATE TABLE IF NOT EXISTS db.deploys (service String, at DateTime) ENGINE = MergeTree "
              "ORDER BY (service, at) TTL at + INTERVAL 30 DAY")
    local, dist = to_cluster(create, layout)
    assert local.startswith(f"CREATE TABLE IF NOT EXISTS db.deploys_local ON CLUSTER {CLUSTER} (")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}') ORDER BY" \
        in local and local.endswith("SETTINGS replicated_deduplication_window = 10000")
    assert dist.endswith("ENGINE = Distributed(errstream_cluster, db, deploys_local, cityHash64(service))")
    alter = to_cluster("ALTER TABLE db.deploys ADD COLUMN IF NOT EXISTS sha String, MODIFY TTL at + INTERVAL 9 DAY",
                       layout)
    assert alter == [
        f"ALTER TABLE db.deploys_local ON CLUSTER {CLUSTER} ADD COLUMN IF NOT EXISTS sha String,\n"
        "    MODIFY TTL at + INTERVAL 9 DAY",
        f"ALTER TABLE db.deploys ON CLUSTER {CLUSTER} ADD COLUMN IF NOT EXISTS sha String",
    ]
    assert to_cluster("DROP TABLE IF EXISTS db.deploys", layout) == [
        f"DROP TABLE IF EXISTS db.deploys ON CLUSTER {CLUSTER} SYNC",
        f"DROP TABLE IF EXISTS db.deploys_local ON CLUSTER {CLUSTER} SYNC",
    ]
    quoted = to_cluster("CREATE TABLE IF NOT EXISTS db.`deploys` (`fingerprint` String) ENGINE = Null", layout)
    assert quoted[0].startswith(f"CREATE TABLE IF NOT EXISTS db.deploys_local ON CLUSTER {CLUSTER} (`fingerprint`")
    assert quoted[1].endswith("deploys_local, cityHash64(fingerprint))")
    assert to_cluster("CREATE VIEW IF NOT EXISTS db.`v` AS SELECT 1", layout) == [
        f"CREATE VIEW IF NOT EXISTS db.`v` ON CLUSTER {CLUSTER} AS SELECT 1"]
    with pytest.raises(ClusterDDLError, match="extend sinks/clickhouse/cluster_ddl.py"):
        to_cluster("INSERT INTO db.deploys VALUES ('a', now())", layout)
    with pytest.raises(ClusterDDLError):  # an inner-table MV would not be replicated
        to_cluster("CREATE MATERIALIZED VIEW db.mv ENGINE = MergeTree ORDER BY x AS SELECT 1 AS x", layout)


def test_single_node_mode_is_unchanged() -> None:
    single = _settings("errstream")
    assert cluster_layout(single) is None
    assert client_settings(single) == {} and local_table(single, "error_events") == "error_events"
    joined = "\n".join(_all_statements(single))
    assert "ON CLUSTER" not in joined and "Replicated" not in joined and "Distributed" not in joined
    clustered = _settings("errstream", CLUSTER)
    assert client_settings(clustered) == {"distributed_foreground_insert": 1}
    assert local_table(clustered, "error_events") == "error_events_local"
