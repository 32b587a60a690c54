"""The embedded endpoint's statement guard, without an engine: tokenizer edge cases and errstream's own SQL."""

from __future__ import annotations

import pytest

from errstream.local.sql_guard import Refused, check_data, check_setting, check_statement, tokenize
from errstream_core.settings import Settings
from sinks.clickhouse.migrate import migration_files, render, split_statements


@pytest.mark.parametrize("sql", [
    "SELECT * FROM file('/etc/passwd')",
    "select * from FiLe ( '/etc/passwd' )",
    "SELECT * FROM `file`('/x')",
    'SELECT * FROM "file"(\'/x\')',
    "SELECT * FROM file/**/('/x')",
    "SELECT * FROM file -- c\n('/x')",
    "SELECT * FROM file # c\n('/x')",
    "SELECT $$'$$, file('/x') -- '",
    "SELECT $tag$ ' $tag$, file('/x')",
    "SELECT 'it''s', file('/x')",
    "SELECT 'a\\'', file('/x') -- '",
    "SELECT `a``b`, file('/x')",
    "SELECT 1 /* /* */ , file('/x') */",  # ClickHouse nests comments; reading more as code is the safe side
    "SELECT 1; DROP TABLE t",
    "SELECT 1 INTO OUTFILE 'x'",
    "INSERT INTO t FROM INFILE '/x' FORMAT CSV",
    "CREATE TABLE t (a Int8) ENGINE File(CSV, '/x')",
    "CREATE TABLE t (a Int8) ENGINE = `URL`('http://x', CSV)",
    "CREATE TABLE t (a Int8) ENGINE = MergeTree ORDER BY a SETTINGS disk = disk(type = local, path = '/x')",
    "create or replace dictionary d (a Int8) PRIMARY KEY a LAYOUT(FLAT()) LIFETIME(0)",
    "CREATE DATABASE d ENGINE = Filesystem('/')",
    "SELECT 1 SETTINGS format_schema = '/x'",
    "SET readonly = 0",
    "  system flush logs",
    "(ATTACH TABLE t FROM '/x' (a Int8) ENGINE = Log)",
])
def test_refused(sql: str) -> None:
    with pytest.raises(Refused):
        check_statement(sql, readonly=False)


@pytest.mark.parametrize("sql", [
    "SELECT url, file, source, input FROM t WHERE url = 'file(x)' -- file(",
    "SELECT domain(url), cutQueryString(url), decodeURLComponent(url) FROM e",
    "SELECT name, engine FROM system.tables WHERE engine = 'File'",
    "SELECT * FROM numbers(10) SETTINGS max_threads = 2",
    "SELECT 1;",
    "INSERT INTO t FORMAT Native",
    "CREATE TABLE t (a Int8) ENGINE = ReplacingMergeTree(a) ORDER BY a",
    "CREATE VIEW v AS SELECT engine FROM system.tables",
    "SELECT {n:UInt64}, {s:String}",
])
def test_allowed(sql: str) -> None:
    check_statement(sql, readonly=False)


@pytest.mark.parametrize("sql,ok", [
    ("SELECT 1", True), ("with 1 AS x SELECT x", True), ("SHOW TABLES", True), ("DESC t", True),
    ("EXPLAIN SELECT 1", True), ("EXISTS TABLE t", True), ("(SELECT 1)", True),
    ("INSERT INTO t VALUES (1)", False), ("/* SELECT */ DROP TABLE t", False), ("ALTER TABLE t DELETE WHERE 1", False),
    ("SET max_threads = 1", False), ("OPTIMIZE TABLE t", False), ("", False),
])
def test_read_only_logins_run_reading_statements_only(sql: str, ok: bool) -> None:
    if ok:
        check_statement(sql, readonly=True)
    else:
        with pytest.raises(Refused, match="read-only"):
            check_statement(sql, readonly=True)


def test_settings_and_values_data() -> None:
    check_setting("max_threads")
    for bad in ("readonly", "format_schema", "format_template_row", "a = 1; SELECT 1", "x y"):
        with pytest.raises(Refused):
            check_setting(bad)
    check_data("Values", b"(1, 'file(')")
    check_data("CSV", b"file('/x')\n")  # not evaluated in CSV
    with pytest.raises(Refused):
        check_data("VALUES", b"(FILE ('/x'))")


def test_unterminated_quotes_are_refused_not_guessed() -> None:
    for sql in ("SELECT 'abc", "SELECT `abc", "SELECT /* x", "SELECT $$ x"):
        with pytest.raises(Refused, match="unterminated"):
            tokenize(sql)


def test_errstream_migrations_pass_the_guard() -> None:
    statements = [s for _, sql in migration_files() for s in split_statements(render(sql, Settings()))]
    assert len(statements) > 10
    for statement in statements:
        check_statement(statement, readonly=False)
