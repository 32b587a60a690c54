"""A fresh database built from ``schema.sql`` is the database the migrations build, table for table.

``migrate`` gives an empty database the squashed schema (``sinks/clickhouse/squash.py``) instead of
replaying every migration; these tests build both on the real ClickHouse engine and compare what
ClickHouse reports of them: every table and view's definition as ClickHouse prints it (engine, keys,
TTL, settings, a view's query) and every column (type, default, codec, key membership).
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from sinks.clickhouse.migrate import migrate, migration_files, render, schema_file, split_statements
from sinks.clickhouse.squash import build

pytestmark = pytest.mark.e2e

_COLUMNS = ("name, type, position, default_kind, default_expression, compression_codec, comment, "
            "is_in_partition_key, is_in_sorting_key, is_in_primary_key")


def _schema(ch: Client, db: str) -> dict[str, object]:
    """What ClickHouse reports of ``db``'s tables and views, with the database's name taken out."""
    tables = ch.query("SELECT name, engine, create_table_query, sorting_key, primary_key, partition_key "
                      "FROM system.tables WHERE database = {db:String} ORDER BY name", parameters={"db": db})
    columns = ch.query(f"SELECT table, {_COLUMNS} FROM system.columns WHERE database = {{db:String}} "
                       "ORDER BY table, position", parameters={"db": db})
    out: dict[str, object] = {}
    for name, engine, create, *keys in tables.result_rows:
        out[name] = (engine, create.replace(db, "<db>"), keys,
                     [tuple(c[1:]) for c in columns.result_rows if c[0] == name])
    return out


def _recorded(ch: Client, db: str) -> list[str]:
    return sorted(r[0] for r in ch.query(f"SELECT name FROM {db}.schema_migrations FINAL").result_rows)


def _other(settings: Settings) -> Settings:
    return settings.model_copy(update={"clickhouse_database": f"{settings.clickhouse_database}_replayed"})


@pytest.fixture
def settings_7_days(settings: Settings) -> Settings:
    """Retention other than the default, so a day count left in the file instead of its placeholder shows."""
    return settings.model_copy(update={"events_ttl_days": 7})


def test_a_fresh_database_from_the_schema_file_equals_one_that_replayed_every_migration(
        settings_7_days: Settings, ch: Client) -> None:
    squashed, replayed = settings_7_days, _other(settings_7_days)
    names = [name for name, _ in migration_files()]

    assert migrate(squashed, ch) == names
    assert migrate(replayed, ch, from_schema_file=False) == names

    got, want = _schema(ch, squashed.clickhouse_database), _schema(ch, replayed.clickhouse_database)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name
    assert _recorded(ch, squashed.clickhouse_database) == _recorded(ch, replayed.clickhouse_database) == names
    assert migrate(squashed, ch) == []  # recorded: nothing runs again
    ch.command(f"DROP DATABASE {replayed.clickhouse_database}")


def test_the_schema_file_covers_every_migration_and_is_what_they_build(settings: Settings, ch: Client) -> None:
    """A new migration without `python -m sinks.clickhouse.squash` run after it fails here."""
    covers, text = schema_file()
    assert covers == [name for name, _ in migration_files()], "run: python -m sinks.clickhouse.squash"
    db = f"errstream_squash_{uuid.uuid4().hex[:10]}"  # built by the same engine the comparison reads
    try:
        assert build(ch.command, lambda sql: ch.query(sql).result_rows, db) == text, \
            "run: python -m sinks.clickhouse.squash"
    finally:
        ch.command(f"DROP DATABASE IF EXISTS {db}")


def test_a_database_left_half_built_from_the_file_is_finished_by_replaying_the_migrations(
        settings: Settings, ch: Client) -> None:
    """A run stopped half-way through the file leaves tables and no record: the next run replays the files
    (all of them may run again over what exists) and the result is the migrated schema."""
    _, text = schema_file()
    statements = split_statements(render(text, settings))
    migrate(settings, ch)
    db = settings.clickhouse_database
    ch.command(f"DROP DATABASE {db}")
    ch.command(f"CREATE DATABASE {db}")
    for statement in statements[: len(statements) // 2]:
        ch.command(statement)

    assert migrate(settings, ch) == [name for name, _ in migration_files()]

    replayed = _other(settings)
    migrate(replayed, ch, from_schema_file=False)
    got, want = _schema(ch, db), _schema(ch, replayed.clickhouse_database)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name
    ch.command(f"DROP DATABASE {replayed.clickhouse_database}")


def test_the_consumers_of_one_process_starting_at_once_build_a_fresh_database_once(
        settings: Settings, ch: Client) -> None:
    """`notify` starts six consumers, each migrating the database first. Before: the five that found the
    first one's tables without its record yet replayed every migration over them, on every start."""
    names = [name for name, _ in migration_files()]
    start = threading.Barrier(6)

    def consumer_start() -> list[str]:
        start.wait()
        return migrate(settings)

    with ThreadPoolExecutor(6) as pool:
        applied = list(pool.map(lambda _: consumer_start(), range(6)))
    assert sorted(applied, key=len) == [[]] * 5 + [names]
    assert _recorded(ch, settings.clickhouse_database) == sorted(names)
