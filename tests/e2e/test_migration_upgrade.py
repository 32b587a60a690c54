"""A database migrated before the migrations were renumbered upgrades without re-running or skipping any.

Such a database records four files under their former names (``0006_original_timestamp.sql``,
``0050_sink_batches.sql``, …): the same contents, in the same order, as today's ``0007``–``0009`` and
``0014``. The test builds that state on the real ClickHouse engine and runs ``migrate`` over it.
"""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from sinks.clickhouse.migrate import RENAMED, migrate, migration_files

pytestmark = pytest.mark.e2e

FORMER = {current: former for former, current in RENAMED.items()}


def _recorded(ch: Client, settings: Settings) -> set[str]:
    return {r[0] for r in ch.query(f"SELECT name FROM {settings.clickhouse_database}.schema_migrations FINAL")
            .result_rows}


def _as_recorded_before_the_renumbering(ch: Client, settings: Settings, upto: int) -> None:
    db = settings.clickhouse_database
    ch.command(f"TRUNCATE TABLE {db}.schema_migrations")
    names = [FORMER.get(name, name) for name, _ in migration_files()[:upto]]
    ch.insert(f"{db}.schema_migrations", [[n] for n in names], column_names=["name"])


def test_a_fully_migrated_database_runs_nothing_and_records_the_current_names(settings: Settings, ch: Client) -> None:
    migrate(settings, ch)
    db = settings.clickhouse_database
    ch.command(f"INSERT INTO {db}.sink_batches (consumer_group, topic, partition, first_offset, last_offset) "
               "VALUES ('g', 'errors', 0, 1, 9)")
    _as_recorded_before_the_renumbering(ch, settings, upto=len(migration_files()))

    assert migrate(settings, ch) == []
    assert _recorded(ch, settings) == {n for n, _ in migration_files()} | set(RENAMED)
    assert ch.query(f"SELECT count() FROM {db}.sink_batches").result_rows == [(1,)]  # nothing recreated
    assert migrate(settings, ch) == []  # and it stays that way


def test_a_database_from_before_the_last_renamed_migration_gets_it_and_those_after(settings: Settings, ch: Client) -> None:
    """Recorded up to the last renamed file (0014): that one and the files added after it run, nothing else."""
    migrate(settings, ch)
    db = settings.clickhouse_database
    ch.command(f"DROP TABLE {db}.sink_batches")
    names = [name for name, _ in migration_files()]
    upto = names.index("0014_sink_batches.sql")
    _as_recorded_before_the_renumbering(ch, settings, upto=upto)

    assert migrate(settings, ch) == names[upto:]
    assert ch.query(f"EXISTS TABLE {db}.sink_batches").result_rows == [(1,)]
