"""What clients of the embedded ClickHouse endpoint may not ask for: anything that reaches the host.

chDB runs inside the endpoint's process, with its owner's rights: ``file()``
reads any file the owner can, ``INSERT INTO FUNCTION file(…)`` writes one,
``url()``/``s3()``/``remote()`` open connections, ``executable()`` runs programs.
A ClickHouse server confines these with ``user_files_path`` and grants; chDB
has neither, so the endpoint refuses them before chDB sees the statement.

How: a tokenizer that follows ClickHouse's lexer (strings with backslash and
doubled-quote escapes, ``$tag$`` heredocs, quoted identifiers, ``--``/``#``/
``/* */`` comments) so that case, whitespace, comments and quoting cannot hide
a call; where it has to guess it errs towards reading text as code (a false
refusal, never a missed call). The endpoint runs the same check a second time
on ClickHouse's own rendering of the statement (``formatQuery``), which
removes any disagreement between this tokenizer and ClickHouse's parser.

Refused for every client: calls of table functions other than the in-memory
ones (``numbers``, ``values``, ``view``, …) and of the ``file`` function; table
and database engines other than the local storage ones; dictionaries (their
sources reach the host); ``INTO OUTFILE``, ``FROM INFILE``; ``SYSTEM``,
``ATTACH``, ``BACKUP``, ``RESTORE``; several statements in one request; the
settings that name server-side files (``format_schema``, template files).
Refused for read-only logins as well: every statement but ``SELECT``, ``WITH``,
``SHOW``, ``DESCRIBE``, ``EXPLAIN`` and ``EXISTS``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Table functions that only compute or read this store; every other one (file, url, s3, remote, mysql,
# executable, input, python, …, and any added by a future chDB) is refused.
SAFE_TABLE_FUNCTIONS = frozenset(name.lower() for name in (
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateSeries", "values",
    "SQLStandardValues", "view", "viewIfPermitted", "null", "merge", "generateRandom", "format", "loop", "primes",
    "mergeTreeIndex", "mergeTreeProjection",
))
# Always refused, whatever chDB lists: the table functions that reach the host, and regular functions that do.
DENIED_CALLS = frozenset(name.lower() for name in (
    "file", "fileCluster", "filesystem", "url", "urlCluster", "s3", "s3Cluster", "gcs", "oss", "cosn", "hdfs",
    "hdfsCluster", "remote", "remoteSecure", "cluster", "clusterAllReplicas", "executable", "input", "mysql",
    "postgresql", "jdbc", "odbc", "mongodb", "redis", "sqlite", "azureBlobStorage", "azureBlobStorageCluster",
    "deltaLake", "iceberg", "hudi", "hive", "paimon", "python", "eval", "ytsaurus", "arrowstream", "bigquery",
    "prometheusQuery", "prometheusQueryRange",
    # not table functions: a dictionary's SOURCE(…) and a table's disk(…) setting name places on the host
    "source", "disk",
))
# Storage that lives inside the store (and the view kinds): every other engine is refused.
ALLOWED_ENGINES = frozenset(name.lower() for name in (
    "MergeTree", "ReplacingMergeTree", "SummingMergeTree", "AggregatingMergeTree", "CollapsingMergeTree",
    "VersionedCollapsingMergeTree", "CoalescingMergeTree", "GraphiteMergeTree", "Memory", "Null", "Log",
    "TinyLog", "StripeLog", "Set", "Join", "Buffer", "Merge", "View", "MaterializedView", "GenerateRandom",
    "Atomic", "Ordinary",
))
# Engines that reach the host, refused even where chDB's list is not at hand (written `ENGINE X`, no `=`).
KNOWN_HOST_ENGINES = frozenset(name.lower() for name in (
    "File", "FileLog", "URL", "S3", "S3Queue", "HDFS", "AzureBlobStorage", "AzureQueue", "Distributed", "Remote",
    "RemoteSecure", "Executable", "ExecutablePool", "MySQL", "PostgreSQL", "MaterializedPostgreSQL", "JDBC",
    "ODBC", "MongoDB", "Redis", "SQLite", "Kafka", "RabbitMQ", "NATS", "EmbeddedRocksDB", "KeeperMap", "Hive",
    "DeltaLake", "Iceberg", "Hudi", "Paimon", "Filesystem", "Backup", "DataLakeCatalog", "QueryRunner", "YTsaurus",
    "COSN", "GCS", "OSS", "BigQuery", "ArrowStream", "Dictionary",
))
DENIED_STATEMENTS = frozenset({"system", "attach", "backup", "restore"})
DENIED_WORDS = frozenset({"outfile", "infile"})
# Settings whose value is a path the server reads or writes.
DENIED_SETTINGS = frozenset({"format_template_resultset", "format_template_row", "output_format_schema"})
DENIED_SETTING_PREFIXES = ("format_schema",)
READONLY_STATEMENTS = frozenset({"select", "with", "show", "describe", "desc", "explain", "exists"})

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"[0-9]+")
_HEREDOC = re.compile(r"\$([A-Za-z0-9_]*)\$")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Refused(Exception):
    """The statement asks for something the endpoint does not do for clients; the text says what."""


@dataclass(frozen=True)
class Token:
    kind: str  # "word" (bare or quoted identifier), "string", "number", "punct"
    text: str  # for words: the name (quotes removed); for punct: the character
    quoted: bool = False


def _quoted_end(sql: str, start: int, quote: str) -> int:
    """Index just past the closing quote; backslash escapes anything, a doubled quote is a quote."""
    i, n = start + 1, len(sql)
    while i < n:
        c = sql[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise Refused("unterminated quoted text")


def _unquote(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body)


def tokenize(sql: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i) or (c == "#" and sql[i + 1:i + 2] in (" ", "!")):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            # ClickHouse nests these comments; ending at the first */ reads more as code, never less.
            end = sql.find("*/", i + 2)
            if end < 0:
                raise Refused("unterminated comment")
            i = end + 2
        elif c == "'":
            end = _quoted_end(sql, i, "'")
            tokens.append(Token("string", sql[i + 1:end - 1]))
            i = end
        elif c in ('"', "`"):
            end = _quoted_end(sql, i, c)
            tokens.append(Token("word", _unquote(sql[i + 1:end - 1].replace(c + c, c)), quoted=True))
            i = end
        elif c == "$" and (m := _HEREDOC.match(sql, i)):
            end = sql.find(m.group(0), m.end())
            if end < 0:
                raise Refused("unterminated heredoc")
            tokens.append(Token("string", sql[m.end():end]))
            i = end + len(m.group(0))
        elif m := _WORD.match(sql, i):
            tokens.append(Token("word", m.group(0)))
            i = m.end()
        elif m := _NUMBER.match(sql, i):
            tokens.append(Token("number", m.group(0)))
            i = m.end()
        else:
            tokens.append(Token("punct", c))
            i += 1
    return tokens


def _first_word(tokens: list[Token]) -> str:
    for t in tokens:
        if t.kind == "word":
            return t.text.lower()
        if t.text != "(":
            return ""
    return ""


# The bounds the server puts on a read-only login's queries (time, memory): a client may not lift them.
LIMIT_SETTINGS = frozenset({
    "max_execution_time", "max_execution_time_leaf", "timeout_overflow_mode", "timeout_overflow_mode_leaf",
    "max_memory_usage", "max_memory_usage_for_user", "max_guaranteed_memory_usage", "memory_overcommit_ratio_denominator",
    "memory_usage_overcommit_max_wait_microseconds", "max_estimated_execution_time", "timeout_before_checking_execution_speed",
})


def _limit_refused(name: str) -> Refused:
    return Refused(f"{name} is set by the server for this read-only login (ERRSTREAM_LOCAL_CLICKHOUSE_ANALYST_*); "
                   "it cannot be changed per query")


def check_setting(name: str, *, readonly: bool = False) -> None:
    """A setting a client passes (URL parameter or SET/SETTINGS): a plain name, and not one naming a file;
    under a read-only login, not one of the limits the server sets for it."""
    if not _SETTING_NAME.match(name):
        raise Refused(f"{name[:60]!r} is not a setting name")
    low = name.lower()
    if readonly and low in LIMIT_SETTINGS:
        raise _limit_refused(name)
    if low in DENIED_SETTINGS or low.startswith(DENIED_SETTING_PREFIXES):
        raise Refused(f"setting {name} names a file on the server")
    if low == "readonly":
        raise Refused("readonly is chosen by the login (use the analyst login), not by a setting")


def check_statement(sql: str, *, readonly: bool, denied_calls: Iterable[str] = DENIED_CALLS,
                    known_engines: Iterable[str] = ()) -> None:
    """Raise ``Refused`` when a client's statement reaches the host, or writes under a read-only login.

    ``known_engines``: the engine's own table and database engine names, so that ``ENGINE X`` (without
    ``=``) is recognised as an engine clause; with ``=`` any name but the allowed ones is refused.
    """
    denied = frozenset(denied_calls)
    engines = frozenset(e.lower() for e in known_engines) | KNOWN_HOST_ENGINES
    tokens = tokenize(sql)
    first = _first_word(tokens)
    defines = first in ("create", "replace", "attach", "alter")
    if defines:
        kinds = [t.text.lower() for t in tokens[1:6] if t.kind == "word" and not t.quoted]
        kinds = [k for k in kinds if k not in ("or", "replace", "temporary")]
        if kinds[:1] == ["dictionary"]:
            raise Refused("dictionaries are not available through this endpoint (their sources reach the host)")
    if first in DENIED_STATEMENTS:
        raise Refused(f"{first.upper()} statements are not available through this endpoint")
    if readonly and first not in READONLY_STATEMENTS:
        raise Refused("this login is read-only (readonly=1): only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN and "
                      "EXISTS are allowed")
    for i, t in enumerate(tokens):
        if t.kind == "punct" and t.text == ";" and any(u.text != ";" for u in tokens[i + 1:]):
            raise Refused("one statement per request (multi-statements are not allowed)")
        if t.kind != "word":
            continue
        low = t.text.lower()
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt is not None and nxt.kind == "punct" and nxt.text == "(" and low in denied:
            raise Refused(f"{t.text}(…) reaches the server's files, network or programs; it is not available "
                          "through this endpoint")
        if not t.quoted and low in DENIED_WORDS:
            raise Refused(f"{t.text.upper()} reads or writes files on the server; it is not available here")
        if defines and not t.quoted and low == "engine" and nxt is not None:
            with_eq = nxt.kind == "punct" and nxt.text == "="
            name = tokens[i + 2] if with_eq and i + 2 < len(tokens) else nxt
            engine = name.text.lower() if name.kind == "word" else None
            if engine is not None and engine not in ALLOWED_ENGINES and (with_eq or engine in engines):
                raise Refused(f"ENGINE = {name.text} is not available through this endpoint (local storage "
                              "engines only: MergeTree family, Memory, Log family, …)")
        if low in DENIED_SETTINGS or low.startswith(DENIED_SETTING_PREFIXES):
            raise Refused(f"setting {t.text} names a file on the server")
        if readonly and not t.quoted and low in LIMIT_SETTINGS:
            raise _limit_refused(t.text)
        if first == "set" and low == "readonly":
            raise Refused("readonly is chosen by the login (use the analyst login), not by a setting")


def check_data(fmt: str, data: bytes, *, denied_calls: Iterable[str] = DENIED_CALLS) -> None:
    """INSERT data in the ``Values`` format may hold expressions ClickHouse evaluates: check them like SQL."""
    if fmt.lower() != "values":
        return
    denied = frozenset(denied_calls)
    tokens = tokenize(data.decode("utf-8", errors="replace"))
    for i, t in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if t.kind == "word" and t.text.lower() in denied and nxt.kind == "punct" and nxt.text == "(":
            raise Refused(f"{t.text}(…) in VALUES data is not available through this endpoint")


def identifier_parameters(sql: str) -> list[str]:
    """Names of ``{name:Identifier}`` parameters: their values become names in the statement."""
    out = []
    tokens = tokenize(sql)
    for i in range(len(tokens) - 4):
        a, name, colon, kind, b = tokens[i:i + 5]
        if (a.text, colon.text, b.text) == ("{", ":", "}") and name.kind == kind.kind == "word" \
                and kind.text.lower() == "identifier":
            out.append(name.text)
    return out


def denied_calls_of(table_functions: Iterable[str]) -> frozenset[str]:
    """The calls to refuse given the engine's own list of table functions: all but the in-memory ones."""
    return DENIED_CALLS | frozenset(f.lower() for f in table_functions if f.lower() not in SAFE_TABLE_FUNCTIONS)
