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
``X-ClickHouse-Exception-Code``. What is not: ClickHouse's native-compressed
bodies (``decompress=1``) and response compression (answers are plain;
clients accept that).
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import gzip
import os
import re
import secrets
import tempfile
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import chdb
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

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


class ClickHouseError(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        m = _ERROR_CODE.search(text)
        self.code = int(m.group(1)) if m else 1000

    @property
    def status(self) -> int:
        if self.code in (60, 81, 16):  # unknown table / database / column
            return 404
        if self.code in (62, 36, 27, 47, 46):  # syntax, bad arguments, parse, unknown identifier/function
            return 400
        if self.code in (516, 192, 193, 194, 195):  # authentication
            return 401
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


def _sql_literal(value: str) -> str:
    if _NUMBER.match(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class EmbeddedClickHouse:
    """Owns the chDB store; runs statements on per-session connections.

    chDB executes one statement at a time per process safely; a single lock
    keeps that true while connections still carry per-session state.
    """

    def __init__(self, path: Path, spool_dir: Path | None = None) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.spool_dir = spool_dir or Path(tempfile.mkdtemp(prefix="errstream-chdb-spool-"))
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._default = chdb.connect(f"file:{path}")
        self._sessions: OrderedDict[str, Any] = OrderedDict()

    def _connection(self, session_id: str | None) -> Any:
        if not session_id:
            return self._default
        conn = self._sessions.get(session_id)
        if conn is None:
            conn = chdb.connect(f"file:{self.path}")
            self._sessions[session_id] = conn
            while len(self._sessions) > _MAX_SESSIONS:
                _, old = self._sessions.popitem(last=False)
                old.close()
        else:
            self._sessions.move_to_end(session_id)
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
    ) -> tuple[bytes, dict[str, int]]:
        spool: Path | None = None
        if data is not None:
            m = _INSERT_FORMAT.match(sql)
            if not m:
                sql = sql + "\n" + data.decode("utf-8", errors="strict")
            else:
                fd, name = tempfile.mkstemp(dir=self.spool_dir, suffix="." + m.group("fmt"))
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                spool = Path(name)
                sql = f"INSERT INTO {m.group('target')} FROM INFILE '{spool}' FORMAT {m.group('fmt')}"
        try:
            with self._lock:
                conn = self._connection(session_id)
                applied: list[str] = []
                try:
                    if database:
                        conn.query(f"USE {database}")
                    for key, value in (settings or {}).items():
                        conn.query(f"SET {key} = {_sql_literal(value)}")
                        applied.append(key)
                    result = conn.query(sql, fmt, params=params or None)
                finally:
                    for key in applied:
                        conn.query(f"SET {key} = DEFAULT")
                    if database:
                        conn.query("USE default")
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

    def close(self) -> None:
        with self._lock:
            for conn in self._sessions.values():
                conn.close()
            self._sessions.clear()
            self._default.close()


def _stat(result: Any, attr: str) -> int:
    value = getattr(result, attr, 0)
    if callable(value):
        value = value()
    return int(value or 0)


def _credentials(request: Request) -> tuple[str, str]:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        return user, password
    user = request.headers.get("x-clickhouse-user") or request.query_params.get("user") or "default"
    password = request.headers.get("x-clickhouse-key") or request.query_params.get("password") or ""
    return user, password


def create_app(engine: EmbeddedClickHouse, password: str | None = None) -> Starlette:
    async def ping(_: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    async def handle(request: Request) -> Response:
        query_id = request.query_params.get("query_id") or str(uuid.uuid4())
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": "errstream-chdb",
            "X-ClickHouse-Timezone": "UTC",
        }
        if password:
            _, given = _credentials(request)
            if not secrets.compare_digest(given, password):
                text = "Code: 516. DB::Exception: default: Authentication failed. (AUTHENTICATION_FAILED)\n"
                return PlainTextResponse(text, status_code=401, headers={**headers, "X-ClickHouse-Exception-Code": "516"})
        params = request.query_params
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
                k: v for k, v in params.items() if k not in _PROTOCOL_PARAMS and not k.startswith("param_")
            }
            qparams = {k[6:]: v for k, v in [*params.items(), *form.items()] if k.startswith("param_")}
            fmt = params.get("default_format") or "TabSeparated"
            out, summary = await run_in_threadpool(
                engine.execute,
                sql,
                data=data,
                fmt=fmt,
                session_id=params.get("session_id"),
                database=params.get("database") or request.headers.get("x-clickhouse-database"),
                settings=settings,
                params=qparams,
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


def serve(path: Path, host: str = "127.0.0.1", port: int = 8123, password: str | None = None) -> None:
    import uvicorn

    engine = EmbeddedClickHouse(path)
    uvicorn.run(create_app(engine, password), host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Serve ClickHouse's HTTP interface from an embedded chDB store")
    ap.add_argument("--path", type=Path, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8123)
    args = ap.parse_args()
    serve(args.path, args.host, args.port, os.environ.get("ERRSTREAM_LOCAL_CLICKHOUSE_PASSWORD") or None)

