"""ClickHouse cluster mode: the single-node migrations rewritten for a sharded, replicated cluster.

With ``ERRSTREAM_CLICKHOUSE_CLUSTER=<name>`` (a cluster in the servers' ``remote_servers``, with the
``{shard}`` and ``{replica}`` macros defined on every server and ClickHouse Keeper configured) every
migration statement goes through ``to_cluster`` before it runs. The migrations themselves stay written
for one server, so a new migration file needs nothing extra unless it uses a statement kind this module
does not know, which it refuses loudly (tests/unit/test_cluster_ddl.py runs every migration through it).

The layout, the one Snuba ships for errors:

* every table ``T`` a migration creates becomes ``T_local`` on each server (``ON CLUSTER``), with its
  ``*MergeTree`` engine replaced by ``Replicated*MergeTree('/clickhouse/tables/{shard}/{database}/{table}',
  '{replica}', …)`` and ``non_replicated_deduplication_window`` by ``replicated_deduplication_window``;
  ``Null`` and other engines stay as they are, local;
* ``T`` itself becomes a ``Distributed`` table over ``T_local``, sharded by ``cityHash64(fingerprint)`` when
  ``T`` has a fingerprint column (one issue's rows, events, counts and status on one shard, so ``FINAL`` and
  per-issue merges never need another shard), else by the hash of the first sorting-key column;
* materialized views run on every server, from ``S_local`` into ``T_local`` (inserts through the
  Distributed ``error_occurrences_in`` land on the shard of their fingerprint, where the views fire);
* plain views read the Distributed tables, so analysts' queries see every shard;
* ``ALTER TABLE T`` changes columns of both ``T_local`` and ``T``; indexes, TTLs and settings only ``T_local``;
* ``INSERT INTO T … SELECT`` (a backfill) runs once, as written, through the Distributed tables.

Writers insert into the Distributed tables with ``distributed_foreground_insert = 1``
(``client_settings``): the insert returns once every shard has its part, so the sink's retry loop and
``insert_deduplication_token`` cover the whole path; each shard deduplicates its part of a replayed batch
within ``replicated_deduplication_window`` (the part and its token are the same on every replay).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from errstream_core.settings import Settings

LOCAL_SUFFIX = "_local"
KEEPER_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
DEDUP_WINDOW = 10_000  # blocks per table, as the single-node tables' non_replicated_deduplication_window

_NAME = r"`?([A-Za-z_][A-Za-z0-9_]*)`?"
_IF_NOT_EXISTS = r"(?:IF\s+NOT\s+EXISTS\s+)?"
_CREATE_TABLE = re.compile(rf"^CREATE\s+TABLE\s+{_IF_NOT_EXISTS}{_NAME}\.{_NAME}\s*\(", re.IGNORECASE)
_CREATE_MV = re.compile(rf"^CREATE\s+MATERIALIZED\s+VIEW\s+{_IF_NOT_EXISTS}{_NAME}\.{_NAME}\s+TO\s+", re.IGNORECASE)
_CREATE_VIEW = re.compile(rf"^CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+{_IF_NOT_EXISTS}{_NAME}\.{_NAME}\b", re.IGNORECASE)
_CREATE_DB = re.compile(rf"^CREATE\s+DATABASE\s+{_IF_NOT_EXISTS}{_NAME}", re.IGNORECASE)
_ALTER = re.compile(rf"^ALTER\s+TABLE\s+{_NAME}\.{_NAME}\s+", re.IGNORECASE)
_DROP = re.compile(rf"^DROP\s+(TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?{_NAME}\.{_NAME}\s*$", re.IGNORECASE)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(\w+)", re.IGNORECASE)
_ORDER_BY = re.compile(r"\bORDER\s+BY\s+", re.IGNORECASE)
_INSERT_SELECT = re.compile(rf"^INSERT\s+INTO\s+{_NAME}\.{_NAME}\s*(?:\([^)]*\))?\s*SELECT\b", re.IGNORECASE)
_COLUMN_ACTION = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR)\s+COLUMN\b", re.IGNORECASE)


class ClusterDDLError(ValueError):
    """A migration statement cluster mode cannot translate: extend this module rather than guess."""


@dataclass(frozen=True)
class ClusterLayout:
    cluster: str
    tables: frozenset[str]  # every table the migrations create: each is T_local + Distributed T

    def on(self) -> str:
        return f"ON CLUSTER {self.cluster}"


def created_tables(statements: Iterable[str]) -> frozenset[str]:
    return frozenset(m.group(2) for s in statements if (m := _CREATE_TABLE.match(s.strip())))


def _closing(sql: str, open_at: int) -> int:
    """Index of the parenthesis closing the one at ``open_at`` (string literals skipped)."""
    depth, i, quote = 0, open_at, ""
    while i < len(sql):
        c = sql[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'`\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ClusterDDLError(f"unbalanced parentheses in: {sql[:120]}")


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = ""
        elif c in "'`\"":
            quote = c
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def column_names(create_table: str) -> list[str]:
    """Column names of a ``CREATE TABLE db.t (…)`` statement (index and projection lines skipped)."""
    open_at = create_table.index("(")
    body = create_table[open_at + 1:_closing(create_table, open_at)]
    names = []
    for item in _split_top(body):
        first = item.split()[0].strip("`")
        if first.upper() not in ("INDEX", "PROJECTION", "CONSTRAINT", "PRIMARY"):
            names.append(first)
    return names


def _sharding_key(create_table: str, columns: list[str]) -> str:
    if "fingerprint" in columns:
        return "cityHash64(fingerprint)"
    m = _ORDER_BY.search(create_table)
    if m:
        rest = create_table[m.end():].strip()
        if rest.startswith("("):
            key = _split_top(rest[1:_closing(rest, 0)])
        else:
            key = [re.split(r"\s+(?:TTL|SETTINGS|PARTITION|PRIMARY|SAMPLE)\b|\s*$", rest, maxsplit=1,
                            flags=re.IGNORECASE)[0]]
        if key and key[0] not in ("tuple()", ""):
            return f"cityHash64({key[0]})"
    return "rand()"


def _replicated_engine(sql: str) -> str:
    m = _ENGINE.search(sql)
    if not m:
        raise ClusterDDLError(f"CREATE TABLE without ENGINE: {sql[:120]}")
    engine = m.group(1)
    if not engine.endswith("MergeTree") or engine.startswith("Replicated"):
        return sql  # Null, Memory, …: per server, nothing to replicate; already replicated: as written
    end = m.end()
    args = ""
    rest = sql[end:]
    if rest.lstrip().startswith("("):
        open_at = end + (len(rest) - len(rest.lstrip()))
        close = _closing(sql, open_at)
        args, end = sql[open_at + 1:close].strip(), close + 1
    new_args = ", ".join(x for x in (f"'{KEEPER_PATH}'", "'{replica}'", args) if x)
    out = f"{sql[:m.start()]}ENGINE = Replicated{engine}({new_args}){sql[end:]}"
    out = re.sub(r"\bnon_replicated_deduplication_window\b", "replicated_deduplication_window", out)
    if "replicated_deduplication_window" not in out:
        glue = ", " if re.search(r"\bSETTINGS\b", out, re.IGNORECASE) else "\nSETTINGS "
        out += f"{glue}replicated_deduplication_window = {DEDUP_WINDOW}"
    return out


def _after_name(sql: str, m: re.Match[str], group: int) -> int:
    """Where a matched name ends, past its closing backquote if it has one."""
    end = m.end(group)
    return end + 1 if sql[end:end + 1] == "`" else end


def _insert_on_cluster(sql: str, after: int, layout: ClusterLayout) -> str:
    return f"{sql[:after]} {layout.on()}{sql[after:]}"


def _to_locals(sql: str, db: str, layout: ClusterLayout) -> str:
    """``db.T`` → ``db.T_local`` for every table of the layout."""
    def sub(m: re.Match[str]) -> str:
        return f"{m.group(1)}.{m.group(2)}{LOCAL_SUFFIX}" if m.group(2) in layout.tables else m.group(0)

    return re.sub(rf"\b({re.escape(db)})\.`?([A-Za-z_][A-Za-z0-9_]*)`?", sub, sql)


def to_cluster(statement: str, layout: ClusterLayout) -> list[str]:
    """The cluster statements that stand for one single-node migration statement."""
    sql = statement.strip().rstrip(";").strip()
    if m := _CREATE_DB.match(sql):
        return [_insert_on_cluster(sql, _after_name(sql, m, 1), layout)]
    if m := _CREATE_TABLE.match(sql):
        db, name = m.group(1), m.group(2)
        local = f"CREATE TABLE IF NOT EXISTS {db}.{name}{LOCAL_SUFFIX} {layout.on()} {sql[m.end() - 1:]}"
        key = _sharding_key(sql, column_names(sql))
        distributed = (f"CREATE TABLE IF NOT EXISTS {db}.{name} {layout.on()} AS {db}.{name}{LOCAL_SUFFIX}\n"
                       f"ENGINE = Distributed({layout.cluster}, {db}, {name}{LOCAL_SUFFIX}, {key})")
        return [_replicated_engine(local), distributed]
    if m := _CREATE_MV.match(sql):
        db, name = m.group(1), m.group(2)
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{name} {layout.on()} TO "
                + _to_locals(sql[m.end():], db, layout)]
    if m := _CREATE_VIEW.match(sql):
        return [_insert_on_cluster(sql, _after_name(sql, m, 2), layout)]
    if m := _ALTER.match(sql):
        db, name = m.group(1), m.group(2)
        if name not in layout.tables:
            return [_insert_on_cluster(sql, _after_name(sql, m, 2), layout)]
        actions = _split_top(sql[m.end():])
        out = [f"ALTER TABLE {db}.{name}{LOCAL_SUFFIX} {layout.on()} " + ",\n    ".join(actions)]
        if columns := [a for a in actions if _COLUMN_ACTION.match(a)]:
            out.append(f"ALTER TABLE {db}.{name} {layout.on()} " + ",\n    ".join(columns))
        return out
    if _INSERT_SELECT.match(sql):
        # a backfill: through the Distributed tables, as written (rows land on their fingerprint's shard)
        return [sql]
    if m := _DROP.match(sql):
        kind, db, name = m.group(1), m.group(2), m.group(3)
        out = [f"DROP {kind} IF EXISTS {db}.{name} {layout.on()} SYNC"]
        if name in layout.tables:
            out.append(f"DROP TABLE IF EXISTS {db}.{name}{LOCAL_SUFFIX} {layout.on()} SYNC")
        return out
    raise ClusterDDLError(
        f"cluster mode cannot translate this migration statement (extend sinks/clickhouse/cluster_ddl.py): {sql[:160]}")


def cluster_statements(statements: list[str], layout: ClusterLayout) -> list[str]:
    return [out for s in statements for out in to_cluster(s, layout)]


def client_settings(settings: Settings) -> dict[str, Any]:
    """Session settings of every client in cluster mode: inserts return once every shard has its part."""
    return {"distributed_foreground_insert": 1} if settings.clickhouse_cluster else {}


def local_table(settings: Settings, table: str) -> str:
    """Where a table's data, TTL and indexes live: ``T_local`` in cluster mode, else ``T``."""
    return table + LOCAL_SUFFIX if settings.clickhouse_cluster else table
