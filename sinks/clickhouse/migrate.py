"""Versioned, idempotent schema migrations.

Each file in ``sinks/clickhouse/migrations`` is applied once, in name order, and recorded
in ``{db}.schema_migrations``; statements use ``IF NOT EXISTS`` so that a run
interrupted half-way can simply be repeated. The same SQL runs on a ClickHouse
server and on embedded chDB.

File names are one strictly increasing sequence (``NNNN_what.sql``, no gaps, no two
alike; ``tests/unit/test_migration_order.py`` enforces it), so the order never rests
on alphabetical tie-breaks. Four files once had other names; a database that recorded
them under those names has them recognised (``RENAMED``), so nothing re-runs or is
skipped, and their current names are recorded beside the old ones.

A database with no tables yet does not replay the files one by one: it gets ``schema.sql``, the schema
they build written out once (``sinks/clickhouse/squash.py`` generates it and says how it is checked),
and every migration the file covers is recorded as applied; any newer file then runs as usual. Cluster
mode always replays the files (their statements are translated for the cluster one by one).

The consumers of one process migrate one database one at a time (``notify`` starts six at once): the
first builds it, the others find it recorded. Run side by side, each of the others saw the first one's
tables without its record yet and replayed every file over them (five replays per start of `notify`).
"""

from __future__ import annotations

import re
import threading
from importlib import resources

from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from sinks.clickhouse.client import connect
from sinks.clickhouse.cluster_ddl import ClusterLayout, cluster_statements, created_tables
from sinks.clickhouse.retention import apply_retention

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Former name -> current name. The files' contents and their relative order did not change.
RENAMED = {
    "0006_original_timestamp.sql": "0007_original_timestamp.sql",
    "0006_regressed_status.sql": "0008_regressed_status.sql",
    "0006_request_and_user_details.sql": "0009_request_and_user_details.sql",
    "0050_sink_batches.sql": "0014_sink_batches.sql",
}


_LOCKS: dict[tuple[str, str], threading.Lock] = {}  # (ClickHouse URL, database) -> held while migrating it
_LOCKS_GUARD = threading.Lock()


def _lock(settings: Settings) -> threading.Lock:
    key = (settings.clickhouse_url, settings.clickhouse_database)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


# The squashed schema (sinks/clickhouse/squash.py writes it): which migrations it covers, on this line.
SCHEMA_FILE = "schema.sql"
COVERS = "-- covers: "


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("sinks.clickhouse") / "migrations"
    return sorted((p.name, p.read_text()) for p in folder.iterdir() if p.name.endswith(".sql"))


def split_statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def schema_file() -> tuple[list[str], str]:
    """The migrations ``schema.sql`` covers, and its text (placeholders not rendered)."""
    text = (resources.files("sinks.clickhouse") / SCHEMA_FILE).read_text()
    covers = next((line[len(COVERS):].split() for line in text.splitlines() if line.startswith(COVERS)), [])
    return covers, text


def render(sql: str, settings: Settings) -> str:
    return sql.format(
        db=settings.clickhouse_database,
        ttl_days=settings.events_ttl_days,
        counts_ttl_days=max(settings.events_ttl_days, 400),
    )


def bootstrap_statements(settings: Settings) -> list[str]:
    """The database and the migrations' own record, before any migration file."""
    db = settings.clickhouse_database
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
        "(name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY name",
    ]


def cluster_layout(settings: Settings) -> ClusterLayout | None:
    """Cluster mode's layout (sinks/clickhouse/cluster_ddl.py) when ERRSTREAM_CLICKHOUSE_CLUSTER is set."""
    if not settings.clickhouse_cluster:
        return None
    if not _IDENT.match(settings.clickhouse_cluster):
        raise ValueError(f"invalid cluster name {settings.clickhouse_cluster!r}")
    every = [*bootstrap_statements(settings),
             *(s for _, sql in migration_files() for s in split_statements(render(sql, settings)))]
    return ClusterLayout(settings.clickhouse_cluster, created_tables(every))


def statements_for(sql: str, settings: Settings, layout: ClusterLayout | None) -> list[str]:
    """A migration file's statements as they run here: as written, or translated for the cluster."""
    statements = split_statements(render(sql, settings))
    return cluster_statements(statements, layout) if layout else statements


def migrate(settings: Settings, client: Client | None = None, *, from_schema_file: bool = True) -> list[str]:
    """Apply pending migrations; return the names applied now.

    ``from_schema_file=False`` replays every file even on an empty database (the test that compares the
    two ways uses it).
    """
    db = settings.clickhouse_database
    if not _IDENT.match(db):
        raise ValueError(f"invalid database name {db!r}")
    with _lock(settings):
        return _migrate(settings, client, from_schema_file=from_schema_file)


def _migrate(settings: Settings, client: Client | None, *, from_schema_file: bool) -> list[str]:
    db = settings.clickhouse_database
    layout = cluster_layout(settings)
    client = client or connect(settings)
    boot = bootstrap_statements(settings)
    for statement in cluster_statements(boot, layout) if layout else boot:
        client.command(statement)
    recorded = {row[0] for row in client.query(f"SELECT name FROM {db}.schema_migrations").result_rows}
    done = recorded | {RENAMED[name] for name in recorded if name in RENAMED}
    if missing := sorted(done - recorded):  # applied under a former name: record the current one too
        client.insert(f"{db}.schema_migrations", [[name] for name in missing], column_names=["name"])
    applied = []
    if from_schema_file and not recorded and layout is None and _has_no_tables(client, db):
        applied = _create_from_schema_file(settings, client)
        done = set(applied)
    for name, sql in migration_files():
        if name in done:
            continue
        for statement in statements_for(sql, settings, layout):
            client.command(statement)
        client.insert(f"{db}.schema_migrations", [[name]], column_names=["name"])
        applied.append(name)
    apply_retention(settings, client)
    return applied


def _has_no_tables(client: Client, db: str) -> bool:
    """Nothing but the migrations' own record: a database created now (or by a run that stopped before
    its first table). One that has tables replays the files, whose statements may all run again."""
    return not client.query("SELECT 1 FROM system.tables WHERE database = {db:String} "
                            "AND name != 'schema_migrations' LIMIT 1", parameters={"db": db}).result_rows


def _create_from_schema_file(settings: Settings, client: Client) -> list[str]:
    """Apply ``schema.sql`` and record the migrations it covers (after its last statement, so a run that
    stops half-way leaves tables and no record: the next run replays the files over them)."""
    covers, sql = schema_file()
    for statement in split_statements(render(sql, settings)):
        client.command(statement)
    client.insert(f"{settings.clickhouse_database}.schema_migrations", [[name] for name in covers],
                  column_names=["name"])
    return covers
