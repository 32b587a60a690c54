"""The schema the migrations build, in one file: what a fresh database gets instead of replaying them.

Replaying ``migrations/`` on an empty database runs every restatement again (``v_error_groups`` is
defined four times, materialized views are dropped and created again, columns are added one ``ALTER``
at a time). ``schema.sql`` holds the result instead: one ``CREATE`` per table and view, as ClickHouse
itself prints them (``system.tables.create_table_query``), with the database and the retention days
left as the same placeholders the migrations use. ``migrate`` applies it to a database that has no
tables yet and records every migration it covers; a database that has tables replays the migrations
as before, so upgrades are untouched.

``python -m sinks.clickhouse.squash`` writes the file again from the migrations (in an embedded chDB);
``tests/e2e/test_squashed_schema.py`` fails when the file differs from what the migrations build, or
when a database created from it differs from a migrated one (tables, engines, keys, columns, views).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

from sinks.clickhouse.migrate import COVERS, SCHEMA_FILE, migration_files, split_statements

# What the file is generated with: a database name and retention days found nowhere else in the
# migrations, so every occurrence in ClickHouse's own rendering can be put back as its placeholder.
_DB = "errstream_squashed_schema"
_TTL = {"ttl_days": 1111, "counts_ttl_days": 2222}
_HEADER = """-- The schema that migrations/ builds, as one statement per table and view (sinks/clickhouse/squash.py).
-- `migrate` applies it to a database with no tables and records the migrations below as applied.
-- Generated: python -m sinks.clickhouse.squash (never edit by hand; tests/e2e/test_squashed_schema.py
-- fails when it differs from what the migrations build).
"""


def migration_statements(db: str, ttl_days: int, counts_ttl_days: int) -> list[str]:
    """Every migration's statements in order, rendered (without ``migrate``'s bookkeeping)."""
    return [s for _, sql in migration_files()
            for s in split_statements(sql.format(db=db, ttl_days=ttl_days, counts_ttl_days=counts_ttl_days))]


def _references(query: str, db: str, names: set[str], own: str) -> set[str]:
    found = set(re.findall(rf"\b{re.escape(db)}\.`?([A-Za-z_][A-Za-z0-9_]*)", query))
    return (found & names) - {own}


def ordered_objects(objects: dict[str, str], db: str) -> list[str]:
    """Names in an order they can be created in: everything an object's query names comes before it."""
    names = set(objects)
    graph = {name: _references(query, db, names, name) for name, query in objects.items()}
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())  # name order among the ready ones: the same file every time
        order.extend(ready)
        sorter.done(*ready)
    return order


def render_schema(objects: dict[str, str], db: str, ttl: dict[str, int]) -> str:
    """The file's text from ``{name: create query}`` of a database built by the migrations."""
    out = [_HEADER, COVERS + " ".join(name for name, _ in migration_files()), ""]
    for name in ordered_objects(objects, db):
        sql = objects[name].replace("{", "{{").replace("}", "}}").replace(db, "{db}")
        for key, days in ttl.items():
            sql = sql.replace(f"toIntervalDay({days})", f"toIntervalDay({{{key}}})")
        out.append(sql + ";")
    return "\n".join(out) + "\n"


def created_objects(rows: Callable[[str], Sequence[Sequence[Any]]], db: str) -> dict[str, str]:
    """``{name: create query}`` of every table and view of ``db`` but the migrations' own record."""
    return {name: create for name, create in rows(
        f"SELECT name, create_table_query FROM system.tables WHERE database = '{db}' "
        "AND name != 'schema_migrations' ORDER BY name")}


def build(run: Callable[[str], Any], rows: Callable[[str], Sequence[Sequence[Any]]], db: str = _DB) -> str:
    """``schema.sql`` as the migrations build it in a new database ``db`` (``run`` one statement,
    ``rows`` of a query): on an embedded chDB (``generate``) or on any ClickHouse (the test)."""
    run(f"CREATE DATABASE {db}")
    for statement in migration_statements(db, **_TTL):
        run(statement)
    return render_schema(created_objects(rows, db), db, _TTL)


def generate() -> str:
    """``schema.sql`` as the current migrations build it, in a throwaway embedded chDB."""
    import tempfile

    import chdb
    import orjson

    with tempfile.TemporaryDirectory() as tmp:
        conn = chdb.connect(f"file:{tmp}")
        try:
            return build(conn.query, lambda sql: orjson.loads(conn.query(sql, "JSONCompact").bytes())["data"])
        finally:
            conn.close()


def main() -> None:
    target = Path(__file__).with_name(SCHEMA_FILE)
    target.write_text(generate())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
