"""clickhouse-connect's own client-side serialisation (Native format), without a server.

clickhouse-connect turns Python values into column bytes on the client; a
value outside a column's range fails there, before anything reaches
ClickHouse. Serialising rows with the column types the migrations declare
proves a row is insertable, and runs in a unit test.
"""

from __future__ import annotations

import re
from typing import Any

from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.transform import NativeTransform
from clickhouse_connect.driver.transform import logger as _transform_log

from sinks.clickhouse.migrate import migration_files

_transform_log.disabled = True  # it logs a traceback for each failure the tests provoke on purpose
_COLUMN = re.compile(r"^\s*(?:ADD COLUMN IF NOT EXISTS\s+)?([a-z_]+)\s+(.+?)(?:\s+(?:CODEC|DEFAULT)\b.*)?,?$")


def column_types(table: str) -> dict[str, str]:
    """Column name → ClickHouse type of ``table``, from its CREATE TABLE and later ADD COLUMNs."""
    out: dict[str, str] = {}
    for _, sql in migration_files():
        lines = sql.splitlines()
        for i, line in enumerate(lines):
            if re.search(rf"CREATE TABLE IF NOT EXISTS \{{db\}}\.{table}\b", line):
                for body in lines[i + 2:]:
                    if body.startswith(")"):
                        break
                    if (m := _COLUMN.match(body)) and not body.strip().startswith("--"):
                        out[m.group(1)] = m.group(2).rstrip(",")
            elif re.search(rf"ALTER TABLE \{{db\}}\.{table}\b", line):
                for body in lines[i:]:
                    m = _COLUMN.match(body.split(f"{table}", 1)[-1] if "ALTER" in body else body)
                    if m and "ADD COLUMN" in body:
                        out[m.group(1)] = m.group(2).rstrip(",;")
                    if body.rstrip().endswith(";"):
                        break
    return out


def serialise(table: str, column_names: list[str], rows: list[list[Any]]) -> bytes:
    """The Native-format bytes clickhouse-connect would send for ``rows``; raises what its insert would."""
    types = column_types(table)
    ctx = InsertContext(table, column_names, [get_from_name(types[c]) for c in column_names], rows)
    out = b"".join(NativeTransform.build_insert(ctx))
    if ctx.insert_exception is not None:  # clickhouse-connect's client raises this after the failed stream
        raise ctx.insert_exception
    return out
