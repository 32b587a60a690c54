"""ClickHouse's HTTP interface served from an embedded chDB store.

chDB refuses ``SYSTEM START LISTEN HTTP`` (there is no server inside it), yet
every tool we care about — clickhouse-connect, curl, analysts' clients — speaks
ClickHouse's HTTP protocol. This module is the thin layer in between: one
process owns the on-disk store and answers that protocol on loopback, so the
sinks and the report use exactly the code path they use against a production
ClickHouse server.

What is honoured: ``query`` in the URL, the body, or a multipart form (with
``param_*`` fields: what clickhouse-connect sends when bound parameters would
make the URL too long), ``database``,
``default_format``, ``session_id`` (one chDB connection per session, so
``SET`` and temporary tables persist), ``param_*`` query parameters, any other
URL parameter as a per-query setting (e.g. ``insert_deduplication_token``),
request bodies compressed with gzip/deflate/zstd/lz4/br, ``INSERT … FORMAT X``
with the data in the body (spooled to a file and read with ``FROM INFILE``),
and errors as ClickHouse's own text with a non-200 status and
``X-ClickHouse-Exception-Code``.

Who may ask: only the logins ``errstream local up`` creates
(``errstream_core.local_credentials``: ``default`` read-write, ``analyst``
read-only), given the ways ClickHouse takes them (HTTP basic auth,
``X-ClickHouse-User``/``X-ClickHouse-Key``, ``user``/``password`` parameters).
What they may ask: nothing that reaches the host (``sql_guard``); read-only
logins run on connections with ``readonly=2`` as well. What is not honoured: ClickHouse's native-compressed
bodies (``decompress=1``) and response compression (answers are plain;
clients accept that).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.parser
import email.policy
import gzip
import os
import queue
import re
import secrets
import tempfile
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chdb
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from errstream.local import sql_guard
from errstream_core.local_credentials import Login

# URL parameters that are part of the HTTP protocol, not ClickHouse settings.
_PROTOCOL_PARAMS = {
    "query", "database", "default_format", "session_id", "session_timeout", "session_check",
    "query_id", "user", "password", "compress", "decompress", "quota_key", "buffer_size",
    "wait_end_of_query", "enable_http_compression", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "http_zlib_compression_level", "client_protocol_version",
    "role", "cancel_http_readonly_queries_on_client_close", "add_http_cors_header",
}
_INSERT_FORMAT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<fmt>[A-Za-z0-9_]+)", re.IGNORECASE | re.DOTALL
)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")
_MAX_SESSIONS = 64
# Statements that change the connection they run on (its database or settings) rather than data.
_CHANGES_CONNECTION = re.compile(r"^(?:\s|\(|/\*.*?\*/|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$))*(SET|USE)\b",
                                 re.IGNORECASE | re.DOTALL)


class ClickHouseError(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        m = _ERROR_CODE.search(text)
        self.code = int(m.group(1)) if m else 1000

    @property
    def status(self) -> int:
        if self.code in (60, 81, 16):  # unknown table / database / column
            return 404
        if self.code in (62, 36, 27, 47, 46, 73):  # syntax, bad arguments, parse, unknown identifier/function/format
            return 400
        if self.code in (516, 192, 193, 194, 195):  # authentication
            return 401
        if self.code in (164, 497):  # readonly, access denied
            return 403
        return 500


def _decode_body(body: bytes, encoding: str | None) -> bytes:
    enc = (encoding or "").strip().lower()
    if not enc or enc == "identity":
        return body
    if enc == "gzip":
        return gzip.decompress(body)
    if enc == "deflate":
        return zlib.decompress(body)
    # Clients stream one compressed frame per data block: decode every concatenated frame.
    if enc == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
        except ImportError:
            from backports import zstd  # type: ignore[no-redef]  # what clickhouse-connect itself uses

        return bytes(zstd.decompress(body))  # decodes every concatenated frame
    if enc == "lz4":
        import lz4.frame

        return _concatenated_frames(body, lz4.frame.LZ4FrameDecompressor)
    if enc == "br":
        import brotli  # type: ignore[import-not-found]

        return bytes(brotli.decompress(body))
    raise ClickHouseError(f"Code: 1. DB::Exception: Unknown Content-Encoding {enc!r}. (NOT_IMPLEMENTED)")


def _concatenated_frames(body: bytes, new_decoder: Any) -> bytes:
    out: list[bytes] = []
    rest = body
    while rest:
        decoder = new_decoder()
        out.append(decoder.decompress(rest))
        rest = decoder.unused_data
    return b"".join(out)


def _identifier(name: str) -> str:
    """A name quoted as ClickHouse reads a backquoted identifier (no way out of the quotes)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _refused(exc: sql_guard.Refused, readonly: bool) -> ClickHouseError:
    if readonly and "read-only" in str(exc):
        return ClickHouseError(f"Code: 164. DB::Exception: {exc}. (READONLY)")
    return ClickHouseError(f"Code: 497. DB::Exception: {exc}. (ACCESS_DENIED)")


def _sql_literal(value: str) -> str:
    if _NUMBER.match(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class AnalystLimits:
    """Bounds on every read-only query (the analyst login): a query over them fails with ClickHouse's
    ``TIMEOUT_EXCEEDED`` / ``MEMORY_LIMIT_EXCEEDED`` instead of holding the host."""

    max_seconds: float = 60.0
    max_memory_bytes: int = 2_000_000_000


class EmbeddedClickHouse:
    """Owns the chDB store; runs statements on per-session connections.

    A connection runs one statement at a time (it carries per-session state: ``USE``, ``SET``), so each
    kind has its lock: one for read-write sessions, one for read-only ones (the analyst login), one for the
    guard's ``formatQuery``. chDB runs statements of different connections concurrently, so an analyst's
    heavy query no longer holds errstream's inserts (it delayed a stored event by 46 s when one lock served
    all); read-only queries are also bounded in time and memory (``AnalystLimits``). Read-write statements
    without a session (all of errstream's own: inserts, the web app's and the report's queries) take one of
    ``connections`` connections that is free, so independent queries of one request run at once, as on a
    ClickHouse server (one connection for them all ran the report's 13 queries one at a time).
    """

    def __init__(self, path: Path, spool_dir: Path | None = None, limits: AnalystLimits | None = None,
                 connections: int = 4) -> None:
        self.path = path
        self.limits = limits or AnalystLimits()
        path.mkdir(parents=True, exist_ok=True)
        self.spool_dir = spool_dir or Path(tempfile.mkdtemp(prefix="errstream-chdb-spool-"))
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # read-write sessions
        self._read_lock = threading.Lock()  # read-only connections
        self._format_lock = threading.Lock()  # the guard's own connection
        self._default = chdb.connect(f"file:{path}")
        # read-write connections without a session: a statement takes a free one (the most recently used first)
        self._pooled = [self._default, *(chdb.connect(f"file:{path}") for _ in range(max(1, connections) - 1))]
        self._free: queue.LifoQueue[Any] = queue.LifoQueue()
        for conn in self._pooled:
            self._free.put(conn)
        self._formatter = chdb.connect(f"file:{path}")
        self._readonly = self._new_connection(readonly=True)
        self._sessions: OrderedDict[tuple[str, str], Any] = OrderedDict()  # read-write, under _lock
        self._read_sessions: OrderedDict[tuple[str, str], Any] = OrderedDict()  # read-only, under _read_lock
        # What the guard refuses, from this engine's own lists (a newer chDB's new table functions included).
        listed = self._default.query("SELECT name FROM system.table_functions", "TabSeparated").bytes().decode()
        self.denied_calls = sql_guard.denied_calls_of(listed.split())
        engines = self._default.query("SELECT name FROM system.table_engines UNION ALL "
                                      "SELECT name FROM system.database_engines", "TabSeparated").bytes().decode()
        self.known_engines = frozenset(engines.split())
        self._rendered_ok: set[tuple[str, bool]] = set()
        # Per connection (by id, under that connection's lock): the database and settings the last
        # request left applied (``_run_with``).
        self._overlays: dict[int, tuple[str | None, dict[str, str]]] = {}

    def _new_connection(self, readonly: bool) -> Any:
        conn = chdb.connect(f"file:{self.path}")
        if readonly:  # 2: settings may change per query, writes, `readonly` itself and the limits may not
            conn.query(f"SET max_execution_time = {self.limits.max_seconds:g}")
            conn.query(f"SET max_memory_usage = {int(self.limits.max_memory_bytes)}")
            conn.query("SET readonly = 2")
        return conn

    def _connection(self, session_id: str | None, user: str, readonly: bool) -> Any:
        """The connection of a read-only statement or of a session; the caller holds the lock of its kind
        (``_read_lock`` or ``_lock``)."""
        if not session_id:
            return self._readonly  # read-write statements without a session take a free connection instead
        sessions = self._read_sessions if readonly else self._sessions
        key = (user, session_id)  # one login cannot reach another's session
        conn = sessions.get(key)
        if conn is None:
            conn = self._new_connection(readonly)
            sessions[key] = conn
            while len(sessions) > _MAX_SESSIONS:
                _, old = sessions.popitem(last=False)
                self._forget(old)
                old.close()
        else:
            sessions.move_to_end(key)
        return conn

    def execute(
        self,
        sql: str,
        *,
        data: bytes | None = None,
        fmt: str = "TabSeparated",
        session_id: str | None = None,
        database: str | None = None,
        settings: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        user: str = "",
        readonly: bool = False,
        guarded: bool = True,
    ) -> tuple[bytes, dict[str, int]]:
        """Run one statement. ``guarded``: it comes from a client, so ``sql_guard`` checks it first."""
        spool: Path | None = None
        m = _INSERT_FORMAT.match(sql) if data is not None else None
        if data is not None and not m:
            sql = sql + "\n" + data.decode("utf-8", errors="strict")
        client_sql = sql  # what the guard sees: the client's statement, before the spool rewrite below
        if guarded:
            self._check(sql, readonly, settings or {}, params or {},
                        (m.group("fmt"), data) if m and data is not None else None)
        if data is not None:
            if m:
                fd, name = tempfile.mkstemp(dir=self.spool_dir, suffix="." + m.group("fmt"))
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                spool = Path(name)
                sql = f"INSERT INTO {m.group('target')} FROM INFILE '{spool}' FORMAT {m.group('fmt')}"
        try:
            if guarded:
                self._check_rendered(client_sql, readonly)
            if readonly or session_id:
                with self._read_lock if readonly else self._lock:
                    conn = self._connection(session_id, user, readonly)
                    result = self._run_with(conn, sql, fmt, params, database or None, settings or {})
            else:
                conn = self._free.get()
                try:
                    result = self._run_with(conn, sql, fmt, params, database or None, settings or {})
                finally:
                    self._free.put(conn)
        except Exception as exc:  # chDB raises its own error types; keep ClickHouse's text
            raise ClickHouseError(str(exc).strip()) from None
        finally:
            if spool is not None:
                spool.unlink(missing_ok=True)
        out = result.bytes() if result is not None and hasattr(result, "bytes") else b""
        summary = {
            key: _stat(result, attr)
            for key, attr in (
                ("read_rows", "rows_read"),
                ("read_bytes", "bytes_read"),
                ("written_rows", "rows_written"),
                ("written_bytes", "bytes_written"),
            )
        }
        return out, summary

    def _run_with(self, conn: Any, sql: str, fmt: str, params: dict[str, str] | None, database: str | None,
                  settings: dict[str, str]) -> Any:
        """``sql`` on ``conn`` in ``database`` with ``settings``, as if both were undone after it.

        A request's database and settings hold for that request only. Rather than undoing them after each
        statement (a ``SET … = DEFAULT`` and ``USE default`` per request, a sixth of a small request's
        time), the connection keeps them until the next request on it, which changes only what differs
        (``_overlays``). A statement that changes the connection itself (``SET``, ``USE``) or fails gets
        everything undone at once, as before.
        """
        key = id(conn)
        was_db, was = self._overlays.pop(key, (None, {}))
        current = dict(was)  # what is applied on the connection now
        in_db = was_db
        try:
            if in_db != database:
                conn.query(f"USE {_identifier(database)}" if database else "USE default")
                in_db = database
            for name in [k for k in current if k not in settings]:
                conn.query(f"SET {name} = DEFAULT")
                del current[name]
            for name, value in settings.items():
                if current.get(name) != value:
                    conn.query(f"SET {name} = {_sql_literal(value)}")
                    current[name] = value
            result = conn.query(sql, fmt, params=params or None)
        except BaseException:
            self._undo(conn, in_db, current)
            raise
        if _CHANGES_CONNECTION.match(sql):
            self._undo(conn, in_db, current)
        else:
            self._overlays[key] = (in_db, current)
        return result

    @staticmethod
    def _undo(conn: Any, database: str | None, settings: dict[str, str]) -> None:
        for name in settings:
            conn.query(f"SET {name} = DEFAULT")
        if database:
            conn.query("USE default")

    def _forget(self, conn: Any) -> None:
        self._overlays.pop(id(conn), None)

    def _check(self, sql: str, readonly: bool, settings: dict[str, str], params: dict[str, str],
               insert: tuple[str, bytes] | None) -> None:
        try:
            sql_guard.check_statement(sql, readonly=readonly, denied_calls=self.denied_calls,
                                      known_engines=self.known_engines)
            for key in settings:
                sql_guard.check_setting(key, readonly=readonly)
            for name in sql_guard.identifier_parameters(sql):
                value = params.get(name, "")
                parts = [p.strip("`\" ").lower() for p in value.split(".")]
                if "(" in value or any(p in self.denied_calls for p in parts):
                    raise sql_guard.Refused(f"identifier parameter {name} = {value[:60]!r} is not allowed")
            if insert is not None:
                sql_guard.check_data(insert[0], insert[1], denied_calls=self.denied_calls)
        except sql_guard.Refused as exc:
            raise _refused(exc, readonly) from None

    def _check_rendered(self, sql: str, readonly: bool) -> None:
        """The guard again, on ClickHouse's own rendering of the statement (on the guard's own connection).

        Whatever the tokenizer and ClickHouse's parser might disagree on (quoting, comments, escapes),
        ``formatQuery`` prints the statement as the parser understood it: plain names, no comments.
        Statements it cannot parse are refused by the engine anyway; the tokenizer's verdict stands.
        Statements that passed are remembered (the sink sends the same INSERT again and again).
        """
        if (sql, readonly) in self._rendered_ok:
            return
        try:
            with self._format_lock:
                rendered = self._formatter.query("SELECT formatQuery({q:String})", "RawBLOB",
                                                 params={"q": sql}).bytes().decode("utf-8", errors="replace")
        except Exception:
            return
        try:
            sql_guard.check_statement(rendered, readonly=readonly, denied_calls=self.denied_calls,
                                      known_engines=self.known_engines)
        except sql_guard.Refused as exc:
            raise _refused(exc, readonly) from None
        if len(sql) <= 4_096:
            if len(self._rendered_ok) >= 4_096:
                self._rendered_ok.clear()
            self._rendered_ok.add((sql, readonly))

    def close(self) -> None:
        with self._lock, self._read_lock, self._format_lock:
            for _ in self._pooled:  # each free again: no statement runs on it
                self._free.get()
            for conn in [*self._sessions.values(), *self._read_sessions.values(), *self._pooled[1:]]:
                conn.close()
            self._sessions.clear()
            self._read_sessions.clear()
            self._overlays.clear()
            self._readonly.close()
            self._formatter.close()
            self._default.close()


def _stat(result: Any, attr: str) -> int:
    value = getattr(result, attr, 0)
    if callable(value):
        value = value()
    return int(value or 0)


def _credentials(request: Request) -> tuple[str, str]:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        return user, password
    user = request.headers.get("x-clickhouse-user") or request.query_params.get("user") or "default"
    password = request.headers.get("x-clickhouse-key") or request.query_params.get("password") or ""
    return user, password


def _authenticate(request: Request, logins: dict[str, Login]) -> Login | None:
    user, given = _credentials(request)
    login = logins.get(user)
    # Compared even for unknown users, so the answer takes as long either way.
    ok = secrets.compare_digest(given.encode(), (login.password if login else secrets.token_hex(16)).encode())
    return login if login is not None and ok else None


def create_app(engine: EmbeddedClickHouse, logins: Sequence[Login]) -> Starlette:
    """The HTTP interface; ``logins`` are the only credentials accepted (at least one: nothing listens open)."""
    if not logins:
        raise ValueError("the embedded ClickHouse endpoint needs at least one login")
    by_user = {login.user: login for login in logins}

    async def ping(_: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    async def handle(request: Request) -> Response:
        query_id = request.query_params.get("query_id") or str(uuid.uuid4())
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": "errstream-chdb",
            "X-ClickHouse-Timezone": "UTC",
        }
        params = request.query_params
        if request.method == "GET" and "query" not in params:
            return PlainTextResponse("Ok.\n", headers=headers)  # ClickHouse answers this without a login too
        login = _authenticate(request, by_user)
        if login is None:
            text = ("Code: 516. DB::Exception: Authentication failed: password is incorrect, or there is no user "
                    "with such name. (AUTHENTICATION_FAILED)\n")
            return PlainTextResponse(text, status_code=401, headers={**headers, "X-ClickHouse-Exception-Code": "516"})
        # readonly=1 in the URL makes this one query read-only, as on a ClickHouse server.
        readonly = login.readonly or params.get("readonly", "0") not in ("", "0")
        started = time.perf_counter()
        try:
            body = _decode_body(await request.body(), request.headers.get("content-encoding"))
            if params.get("decompress") == "1":
                raise ClickHouseError(
                    "Code: 1. DB::Exception: decompress=1 (ClickHouse-native compressed bodies) is not "
                    "supported by the embedded server; use HTTP Content-Encoding. (NOT_IMPLEMENTED)"
                )
            form = _form_fields(body, request.headers.get("content-type", ""))
            if form:
                body = b""
            url_query = params.get("query") or form.get("query")
            if url_query is None and request.method == "GET":
                return PlainTextResponse("Ok.\n", headers=headers)
            if url_query is None:
                sql, data = _split_body(body)
            elif body:
                sql, data = url_query, body
            else:
                sql, data = url_query, None
            settings = {
                k: v for k, v in params.items()
                if k not in _PROTOCOL_PARAMS and not k.startswith("param_") and k != "readonly"
            }
            qparams = {k[6:]: v for k, v in [*params.items(), *form.items()] if k.startswith("param_")}
            fmt = params.get("default_format") or "TabSeparated"
            if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", fmt):
                raise ClickHouseError(f"Code: 73. DB::Exception: Unknown format {fmt[:64]!r}. (UNKNOWN_FORMAT)")
            out, summary = await run_in_threadpool(
                engine.execute,
                sql,
                data=data,
                fmt=fmt,
                session_id=params.get("session_id"),
                database=params.get("database") or request.headers.get("x-clickhouse-database"),
                settings=settings,
                params=qparams,
                user=login.user,
                readonly=readonly,
            )
        except Exception as exc:  # the client must get a ClickHouse-shaped error, never a bare 500
            err = exc if isinstance(exc, ClickHouseError) else ClickHouseError(
                f"Code: 1000. DB::Exception: {type(exc).__name__}: {exc}. (POCO_EXCEPTION)"
            )
            text = str(err)
            return PlainTextResponse(
                text + "\n",
                status_code=err.status,
                headers={**headers, "X-ClickHouse-Exception-Code": str(err.code)},
            )
        summary["elapsed_ns"] = int((time.perf_counter() - started) * 1e9)
        headers["X-ClickHouse-Summary"] = orjson.dumps({k: str(v) for k, v in summary.items()}).decode()
        fmt_match = re.search(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", sql, re.IGNORECASE)
        out_fmt = fmt_match.group(1) if fmt_match else params.get("default_format") or "TabSeparated"
        headers["X-ClickHouse-Format"] = out_fmt
        media = "application/octet-stream" if out_fmt in ("Native", "RowBinary", "Arrow", "Parquet") else "text/plain; charset=UTF-8"
        return Response(out, headers=headers, media_type=media)

    routes = [
        Route("/ping", ping, methods=["GET", "HEAD"]),
        Route("/replicas_status", ping, methods=["GET"]),
        Route("/", handle, methods=["GET", "POST"]),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        engine.close()

    return Starlette(routes=routes, lifespan=lifespan)


def _form_fields(body: bytes, content_type: str) -> dict[str, str]:
    """The fields of a ``multipart/form-data`` body (``query`` and ``param_*``); {} for any other body."""
    if not content_type.lower().startswith("multipart/form-data"):
        return {}
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        if part.get_filename() is not None:
            raise ClickHouseError("Code: 48. DB::Exception: external tables (files in a multipart form) are not "
                                  "supported by the embedded server. (NOT_IMPLEMENTED)")
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8")
    return fields


def _split_body(body: bytes) -> tuple[str, bytes | None]:
    """A body without ``query`` in the URL: the statement, then (for INSERT … FORMAT) the data."""
    head = body[:65_536].decode("utf-8", errors="replace")
    m = _INSERT_FORMAT.match(head)
    if not m:
        return body.decode("utf-8"), None
    end = len(head[: m.end()].encode("utf-8"))
    rest = body[end:]
    # Exactly one separator after the format name; binary data may itself start with whitespace.
    if rest.startswith(b"\r\n"):
        rest = rest[2:]
    elif rest[:1] in (b"\n", b" ", b"\t"):
        rest = rest[1:]
    return head[: m.end()], rest


def serve(path: Path, logins: Sequence[Login], host: str = "127.0.0.1", port: int = 8123,
          limits: AnalystLimits | None = None) -> None:
    import uvicorn

    app = create_app(EmbeddedClickHouse(path, limits=limits), logins)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    import argparse

    from errstream_core.local_credentials import ensure_logins

    ap = argparse.ArgumentParser(description="Serve ClickHouse's HTTP interface from an embedded chDB store")
    ap.add_argument("--path", type=Path, required=True)
    ap.add_argument("--home", type=Path, required=True, help="where the logins' password files are (0600)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8123)
    ap.add_argument("--analyst-max-seconds", type=float, default=None,
                    help="time limit of a read-only query (default ERRSTREAM_LOCAL_CLICKHOUSE_ANALYST_MAX_SECONDS)")
    ap.add_argument("--analyst-max-memory-bytes", type=int, default=None,
                    help="memory limit of a read-only query (default ERRSTREAM_LOCAL_CLICKHOUSE_ANALYST_MAX_MEMORY_BYTES)")
    args = ap.parse_args()
    from errstream_core.settings import get_settings

    configured = get_settings()
    serve(args.path, ensure_logins(args.home), args.host, args.port, AnalystLimits(
        args.analyst_max_seconds or configured.local_clickhouse_analyst_max_seconds,
        args.analyst_max_memory_bytes or configured.local_clickhouse_analyst_max_memory_bytes))

