"""The ClickHouse HTTP interface as clients see it (embedded chDB locally, a real server when configured)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from errstream_core.settings import Settings
from sinks.clickhouse.client import connect


@pytest.fixture
def db(clickhouse_url: str) -> Iterator[tuple[Client, str]]:
    name = f"http_{uuid.uuid4().hex[:8]}"
    client = connect(Settings(clickhouse_url=clickhouse_url))
    client.command(f"CREATE DATABASE {name}")
    yield client, name
    client.command(f"DROP DATABASE IF EXISTS {name}")


def test_unmodified_clickhouse_connect_creates_inserts_and_queries(db: tuple[Client, str]) -> None:
    client, name = db
    client.command(
        f"CREATE TABLE {name}.t (id UInt64, s String, ts DateTime64(3, 'UTC'), u UUID, "
        "tags Map(String, String), arr Array(String), lc LowCardinality(String)) ENGINE = MergeTree ORDER BY id"
    )
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [(i, f"s{i}", now, uuid.UUID(int=i), {"k": str(i)}, ["a", "b"], "x") for i in range(150_000)]
    # 150k rows span several Native blocks, each streamed as its own compressed frame.
    client.insert(f"{name}.t", rows, column_names=["id", "s", "ts", "u", "tags", "arr", "lc"])
    assert client.query(f"SELECT count(), sum(id) FROM {name}.t").result_rows == [(150_000, sum(range(150_000)))]
    got = client.query(f"SELECT * FROM {name}.t WHERE id = {{n:UInt64}}", parameters={"n": 7}).result_rows
    assert got == [(7, "s7", now.replace(tzinfo=None), uuid.UUID(int=7), {"k": "7"}, ["a", "b"], "x")]
    assert client.query(f"SELECT * FROM {name}.t WHERE id > 10000000").result_rows == []


def test_hundreds_of_bound_uuids_sent_as_a_multipart_form(db: tuple[Client, str]) -> None:
    client, name = db
    client.command(f"CREATE TABLE {name}.ids (u UUID, n UInt32) ENGINE = MergeTree ORDER BY u")
    ids = [uuid.uuid4() for _ in range(1_000)]
    client.insert(f"{name}.ids", [(u, i) for i, u in enumerate(ids)], column_names=["u", "n"])
    wanted = ids[::3]  # 334 UUIDs: too long for a URL, so clickhouse-connect posts a form
    got = client.query(f"SELECT count(), sum(n) FROM {name}.ids WHERE u IN {{ids:Array(UUID)}}",
                       parameters={"ids": wanted}).result_rows
    assert got == [(len(wanted), sum(range(0, 1_000, 3)))]


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])
def test_every_request_compression_clickhouse_connect_offers_is_decoded(
    clickhouse_url: str, db: tuple[Client, str], compress: str | bool
) -> None:
    _, name = db
    kw = Settings(clickhouse_url=clickhouse_url).clickhouse_client_kwargs()
    client = clickhouse_connect.get_client(**kw, compress=compress)
    client.command(f"CREATE TABLE {name}.c (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
    client.insert(f"{name}.c", [(i, "v" * 30) for i in range(100_000)], column_names=["id", "s"])
    assert client.query(f"SELECT count() FROM {name}.c").result_rows == [(100_000,)]


def test_insert_deduplication_token_in_the_url_is_honoured(db: tuple[Client, str]) -> None:
    client, name = db
    client.command(
        f"CREATE TABLE {name}.d (id UInt64) ENGINE = MergeTree ORDER BY id "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    for token in ("batch-1", "batch-1", "batch-2"):
        client.insert(f"{name}.d", [(1,), (2,)], column_names=["id"], settings={"insert_deduplication_token": token})
    assert client.query(f"SELECT count() FROM {name}.d").result_rows == [(4,)]


def test_curl_style_get_and_errors_carry_clickhouse_text_and_status(clickhouse_url: str) -> None:
    base = clickhouse_url
    auth = None
    parsed = httpx.URL(clickhouse_url)
    if parsed.username:
        auth = (parsed.username, parsed.password)
        base = str(parsed.copy_with(username=None, password=None))
    r = httpx.get(base.rstrip("/") + "/", params={"query": "SELECT 1"}, auth=auth)
    assert r.status_code == 200 and r.text == "1\n"
    bad = httpx.get(base.rstrip("/") + "/", params={"query": "SELECT nope FROM system.one"}, auth=auth)
    assert bad.status_code >= 400
    assert "Code: 47" in bad.text and "UNKNOWN_IDENTIFIER" in bad.text
    missing = httpx.get(base.rstrip("/") + "/", params={"query": "SELECT 1 FROM no_such_db.t"}, auth=auth)
    assert missing.status_code == 404 and "UNKNOWN" in missing.text


def test_clickhouse_connect_raises_the_server_error_text(db: tuple[Client, str]) -> None:
    client, name = db
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE"):
        client.query(f"SELECT * FROM {name}.absent")


def test_body_insert_in_text_formats_like_curl_users_send(clickhouse_url: str, db: tuple[Client, str]) -> None:
    client, name = db
    client.command(f"CREATE TABLE {name}.j (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
    parsed = httpx.URL(clickhouse_url)
    auth = (parsed.username, parsed.password) if parsed.username else None
    base = str(parsed.copy_with(username=None, password=None)).rstrip("/") + "/"
    body = f'INSERT INTO {name}.j FORMAT JSONEachRow\n{{"id": 1, "s": "one"}}\n{{"id": 2, "s": "two"}}\n'
    assert httpx.post(base, content=body.encode(), auth=auth).status_code == 200
    r = httpx.post(base, params={"query": f"INSERT INTO {name}.j FORMAT CSV"}, content=b"3,three\n", auth=auth)
    assert r.status_code == 200
    assert client.query(f"SELECT groupArray(s) FROM (SELECT s FROM {name}.j ORDER BY id)").result_rows == [
        (["one", "two", "three"],)
    ]


def test_a_requests_database_and_settings_hold_for_that_request_only(
        clickhouse_url: str, db: tuple[Client, str]) -> None:
    _, name = db
    parsed = httpx.URL(clickhouse_url)
    auth = (parsed.username, parsed.password) if parsed.username else None
    base = str(parsed.copy_with(username=None, password=None)).rstrip("/") + "/"
    ask = "SELECT currentDatabase(), getSetting('max_block_size'), getSetting('max_result_rows') FORMAT CSV"

    def answer(**params: str) -> str:
        r = httpx.get(base, params={"query": ask, **params}, auth=auth)
        assert r.status_code == 200, r.text
        return r.text.strip()

    default = answer()
    db_default, block_default, rows_default = default.split(",")
    assert db_default == '"default"'
    # One request at a time on one server: each sees exactly what it asked for, nothing left by the one before.
    assert answer(database=name, max_block_size="1234") == f'"{name}",1234,{rows_default}'
    assert answer(database=name, max_block_size="1234", max_result_rows="77") == f'"{name}",1234,77'
    assert answer(max_result_rows="77") == f'"default",{block_default},77'
    assert answer() == default
    failed = httpx.get(base, params={"query": "SELECT nope", "database": name, "max_block_size": "99"}, auth=auth)
    assert failed.status_code >= 400
    assert answer() == default
    # A session's own SET stays with the session; a request's setting does not.
    session = {"session_id": f"s-{uuid.uuid4().hex[:8]}"}
    r = httpx.get(base, params={"query": "SET max_result_rows = 55", **session, "max_block_size": "4321"}, auth=auth)
    assert r.status_code == 200, r.text
    assert answer(**session) == f'"default",{block_default},55'
    assert answer() == default


def test_independent_queries_without_a_session_run_at_once(db: tuple[Client, str]) -> None:
    """The web app's and the report's independent queries overlap (as on a ClickHouse server): four queries that
    each wait 0.6 s, sent at once, are all answered well before the 2.4 s they would take one after another."""
    from concurrent.futures import ThreadPoolExecutor

    client, _ = db
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda i: client.query(f"SELECT {i}, sleep(0.6)").result_rows[0][0], range(4)))
    assert got == [0, 1, 2, 3]
    assert time.perf_counter() - started < 1.8
