"""The embedded ClickHouse endpoint (`errstream local up`) as an attacker on the same machine meets it.

Its own endpoint, not the session's server: these are properties of errstream's endpoint, whatever
ClickHouse the other tests are pointed at.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from errstream.local.clickhouse import LocalClickHouse
from errstream.local.process import free_port
from errstream_core.local_credentials import ADMIN_USER, ANALYST_USER, ensure_logins, read_password
from errstream_core.settings import Settings
from sinks.clickhouse.client import connect

pytestmark = pytest.mark.e2e

SECRET = "TOPSECRET-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalClickHouse]:
    ch = LocalClickHouse(state_dir=tmp_path_factory.mktemp("chsec"), port=free_port())
    ch.up()
    try:
        yield ch
    finally:
        ch.down()


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("host") / "secret.txt"
    path.write_text(SECRET + "\n")
    return path


def _admin(ch: LocalClickHouse) -> tuple[str, str]:
    return ADMIN_USER, read_password(ch.state_dir, ADMIN_USER) or ""


def _analyst(ch: LocalClickHouse) -> tuple[str, str]:
    return ANALYST_USER, read_password(ch.state_dir, ANALYST_USER) or ""


def _q(ch: LocalClickHouse, sql: str, auth: tuple[str, str] | None, **params: str) -> httpx.Response:
    return httpx.post(ch.url + "/", params={"query": sql, **params}, auth=auth, timeout=30)


def test_passwords_are_made_once_readable_by_the_owner_only(endpoint: LocalClickHouse) -> None:
    for user in (ADMIN_USER, ANALYST_USER):
        path = endpoint.state_dir / ("clickhouse.password" if user == ADMIN_USER else "clickhouse-analyst.password")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert len(read_password(endpoint.state_dir, user) or "") >= 24
    before = [login.password for login in ensure_logins(endpoint.state_dir)]
    assert [login.password for login in ensure_logins(endpoint.state_dir)] == before  # never replaced
    assert before[0] != before[1]


def test_unauthenticated_and_wrong_credentials_are_refused(endpoint: LocalClickHouse) -> None:
    url = endpoint.url + "/"
    table = f"default.t_{uuid.uuid4().hex[:8]}"
    user, password = _admin(endpoint)
    attempts = [
        httpx.get(url, params={"query": "SELECT 1"}),
        httpx.post(url, content=f"CREATE TABLE {table} (a UInt8) ENGINE = Memory".encode()),
        httpx.post(url, params={"query": f"CREATE TABLE {table} (a UInt8) ENGINE = Memory"}, auth=(user, "wrong")),
        httpx.post(url, params={"query": "SELECT 1"}, headers={"X-ClickHouse-User": user, "X-ClickHouse-Key": "x"}),
        httpx.post(url, params={"query": "SELECT 1", "user": user, "password": password + "x"}),
        httpx.post(url, params={"query": "SELECT 1"}, auth=("nobody", password)),  # right password, wrong user
        httpx.post(url, params={"query": "SELECT 1"}, auth=(ANALYST_USER, password)),  # another login's password
        httpx.post(url, params={"query": "SELECT 1"}, headers={"Authorization": "Basic !!!not-base64"}),
    ]
    for r in attempts:
        assert r.status_code == 401, (r.status_code, r.text)
        assert "AUTHENTICATION_FAILED" in r.text and r.headers["X-ClickHouse-Exception-Code"] == "516"
    ok = _q(endpoint, f"EXISTS TABLE {table}", (user, password))
    assert ok.status_code == 200 and ok.text == "0\n"  # nothing was created
    assert httpx.get(endpoint.url + "/ping").text == "Ok.\n"  # health needs no login, as on ClickHouse


def test_credentials_are_accepted_the_ways_clickhouse_accepts_them(endpoint: LocalClickHouse) -> None:
    url = endpoint.url + "/"
    user, password = _admin(endpoint)
    answers = [
        httpx.get(url, params={"query": "SELECT 1"}, auth=(user, password)),
        httpx.get(url, params={"query": "SELECT 1"}, headers={"X-ClickHouse-User": user, "X-ClickHouse-Key": password}),
        httpx.get(url, params={"query": "SELECT 1", "user": user, "password": password}),
        httpx.get(endpoint.client_url + "/", params={"query": "SELECT 1"}),  # userinfo in the URL: basic auth
    ]
    assert [(r.status_code, r.text) for r in answers] == [(200, "1\n")] * 4
    # errstream's own processes find the password themselves: the local URL without credentials is enough.
    settings = Settings(clickhouse_url=endpoint.url, home=endpoint.state_dir, local_clickhouse_port=endpoint.port)
    assert connect(settings).query("SELECT currentDatabase()").result_rows == [("default",)]


def test_the_analyst_login_reads_and_cannot_write(endpoint: LocalClickHouse) -> None:
    admin, analyst = _admin(endpoint), _analyst(endpoint)
    db = f"ro_{uuid.uuid4().hex[:8]}"
    assert _q(endpoint, f"CREATE DATABASE {db}", admin).status_code == 200
    assert _q(endpoint, f"CREATE TABLE {db}.t (a UInt8) ENGINE = MergeTree ORDER BY a", admin).status_code == 200
    assert _q(endpoint, f"INSERT INTO {db}.t VALUES (1), (2)", admin).status_code == 200
    for sql in (f"SELECT sum(a) FROM {db}.t", f"WITH 2 AS k SELECT count() FROM {db}.t WHERE a = k",
                f"SHOW TABLES FROM {db}", f"DESCRIBE TABLE {db}.t", f"EXPLAIN SELECT * FROM {db}.t",
                f"  /* comment */ (SELECT max(a) FROM {db}.t)"):
        r = _q(endpoint, sql, analyst)
        assert r.status_code == 200, (sql, r.text)
    for sql in (f"INSERT INTO {db}.t VALUES (3)", f"DROP TABLE {db}.t", f"TRUNCATE TABLE {db}.t",
                f"ALTER TABLE {db}.t DELETE WHERE 1", f"CREATE TABLE {db}.u (a UInt8) ENGINE = Memory",
                f"/* SELECT */ DROP DATABASE {db}", "SET readonly = 0", f"OPTIMIZE TABLE {db}.t FINAL",
                f"RENAME TABLE {db}.t TO {db}.v", "KILL QUERY WHERE 1"):
        r = _q(endpoint, sql, analyst)
        assert r.status_code == 403, (sql, r.status_code, r.text)
        assert "READONLY" in r.text or "readonly" in r.text, r.text
    # readonly=0 in the URL does not lift it; readonly=1 in the URL makes a read-write login read-only.
    assert _q(endpoint, f"INSERT INTO {db}.t VALUES (4)", analyst, readonly="0").status_code == 403
    assert _q(endpoint, f"INSERT INTO {db}.t VALUES (5)", admin, readonly="1").status_code == 403
    # sessions: the analyst's session is its own, and stays read-only
    r = _q(endpoint, f"INSERT INTO {db}.t VALUES (6)", analyst, session_id="s1")
    assert r.status_code == 403
    assert _q(endpoint, f"SELECT count() FROM {db}.t", admin).text == "2\n"
    # the unmodified clickhouse-connect with the analyst login: connects, queries, and cannot insert
    client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint.port, username=analyst[0],
                                           password=analyst[1], autogenerate_session_id=False, database=db)
    assert client.query("SELECT sum(a) FROM t").result_rows == [(3,)]
    assert client.query(f"SELECT sum(a) FROM {db}.t WHERE a = {{n:UInt8}}", parameters={"n": 2}).result_rows == [(2,)]
    with pytest.raises(DatabaseError, match="READONLY|readonly"):
        client.insert(f"{db}.t", [[9]], column_names=["a"])
    assert _q(endpoint, f"SELECT count() FROM {db}.t", admin).text == "2\n"


def _disguises(secret: Path, out: Path) -> list[tuple[str, dict[str, str], bytes | None]]:
    """(query in the URL, extra URL parameters, body): ways to reach the host, each as a client may send it."""
    s, o = str(secret), str(out)
    return [
        (f"SELECT * FROM file('{s}', 'LineAsString')", {}, None),
        (f"SELECT * FROM FILE('{s}', 'LineAsString')", {}, None),
        (f"SELECT * FROM `file`('{s}', 'LineAsString')", {}, None),
        (f'SELECT * FROM "file"(\'{s}\', \'LineAsString\')', {}, None),
        (f"SELECT * FROM file /* hidden */ ('{s}', 'LineAsString')", {}, None),
        (f"SELECT * FROM -- line comment\n file\n\t('{s}', 'LineAsString')", {}, None),
        (f"SELECT * FROM fIlE('{s}', 'LineAsString')", {}, None),
        (f"SELECT file('{s}')", {}, None),  # the regular function reads a file too
        (f"SELECT $$'$$, * FROM file('{s}', 'LineAsString') -- '", {}, None),  # heredoc vs. quote confusion
        (f"SELECT 'a\\'', * FROM file('{s}', 'LineAsString') -- '", {}, None),
        (f"SELECT 1; SELECT * FROM file('{s}', 'LineAsString')", {}, None),
        ("SELECT * FROM", {}, f"file('{s}', 'LineAsString')".encode()),  # split between URL and body
        (f"INSERT INTO FUNCTION file('{o}', 'LineAsString') SELECT 'pwned'", {}, None),
        (f"SELECT 'pwned' INTO OUTFILE '{o}'", {}, None),
        (f"CREATE TABLE default.f_{uuid.uuid4().hex[:6]} (l String) ENGINE = File(LineAsString, '{s}')", {}, None),
        (f"CREATE TABLE default.u_{uuid.uuid4().hex[:6]} (l String) ENGINE=URL('http://127.0.0.1:1/x', CSV)", {},
         None),
        (f"CREATE TABLE default.c_{uuid.uuid4().hex[:6]} ENGINE = Memory AS SELECT * FROM "
         f"url('http://127.0.0.1:1/', 'LineAsString')", {}, None),
        (f"CREATE DICTIONARY default.d_{uuid.uuid4().hex[:6]} (l String) PRIMARY KEY l "
         f"SOURCE(FILE(path '{s}' format 'LineAsString')) LAYOUT(FLAT()) LIFETIME(0)", {}, None),
        ("SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV')", {}, None),
        ("SELECT * FROM remote('127.0.0.1:9000', system.one)", {}, None),
        ("SELECT * FROM remoteSecure('127.0.0.1:9440', system.one)", {}, None),
        ("SELECT * FROM executable('cat /etc/hostname', 'LineAsString', 'l String')", {}, None),
        ("SELECT * FROM hdfs('hdfs://127.0.0.1:1/x', 'CSV')", {}, None),
        ("SELECT * FROM mysql('127.0.0.1:1', 'db', 't', 'u', 'p')", {}, None),
        ("SELECT * FROM postgresql('127.0.0.1:1', 'db', 't', 'u', 'p')", {}, None),
        ("SELECT * FROM python('x')", {}, None),
        ("INSERT INTO TABLE FUNCTION null('a String') SELECT * FROM input('a String') FORMAT CSV", {}, b"x\n"),
        (f"INSERT INTO default.t_any FROM INFILE '{s}' FORMAT LineAsString", {}, None),
        ("SYSTEM FLUSH LOGS", {}, None),
        ("system  RELOAD CONFIG", {}, None),
        (f"ATTACH TABLE default.a_{uuid.uuid4().hex[:6]} FROM '{secret.parent}' (l String) ENGINE = Log", {}, None),
        ("SELECT * FROM {t:Identifier}('" + s + "', 'LineAsString')", {"param_t": "file"}, None),
        ("SELECT 1", {"database": f"default; SELECT * FROM file('{s}', 'LineAsString')"}, None),
        ("SELECT 1", {f"max_threads = 1; SELECT * FROM file('{s}', 'LineAsString') --": "1"}, None),
        ("SELECT 1 FORMAT Template", {"format_template_resultset": s}, None),
        ("SELECT 1", {"default_format": "TSV; SELECT * FROM file('" + s + "')"}, None),
    ]


def test_clients_cannot_reach_the_host_in_any_disguise(endpoint: LocalClickHouse, secret_file: Path,
                                                       tmp_path: Path) -> None:
    admin = _admin(endpoint)
    out = tmp_path / "written-by-the-endpoint.txt"
    assert _q(endpoint, "CREATE TABLE IF NOT EXISTS default.t_any (l String) ENGINE = Memory", admin).status_code == 200
    for sql, extra, body in _disguises(secret_file, out):
        for who in (admin, _analyst(endpoint)):
            r = httpx.post(endpoint.url + "/", params={"query": sql, **extra}, content=body, auth=who, timeout=30)
            # refused by the guard (ACCESS_DENIED), or for a database name the injection made unknown
            refused = r.status_code == 403 and r.headers["X-ClickHouse-Exception-Code"] in ("497", "164")
            odd_name = (r.status_code, "database" in extra or "default_format" in extra) in ((404, True), (400, True))
            assert refused or odd_name, (who[0], sql, extra, r.text)
            assert SECRET not in r.text, (sql, r.text)
            assert not out.exists(), sql
    # the same through the bodies clients use: the whole statement in the body, and a multipart form
    body = f"SELECT * FROM file('{secret_file}', 'LineAsString')".encode()
    r = httpx.post(endpoint.url + "/", content=body, auth=admin)
    assert r.status_code == 403 and SECRET not in r.text
    r = httpx.post(endpoint.url + "/", files={"query": (None, body)}, auth=admin)
    assert r.status_code == 403 and SECRET not in r.text
    # INSERT … FORMAT Values data is evaluated as expressions: checked like SQL
    r = httpx.post(endpoint.url + "/", params={"query": "INSERT INTO default.t_any FORMAT Values"},
                   content=f"(file('{secret_file}'))".encode(), auth=admin)
    assert r.status_code == 403
    assert _q(endpoint, "SELECT count() FROM default.t_any", admin).text == "0\n"


def test_what_clients_legitimately_send_still_works(endpoint: LocalClickHouse) -> None:
    """Words that only look like the refused ones: columns, strings, comments, system tables."""
    admin = _admin(endpoint)
    db = f"ok_{uuid.uuid4().hex[:8]}"
    statements = [
        f"CREATE DATABASE {db}",
        f"CREATE TABLE {db}.e (url String, file String, source String, input String, engine String) "
        "ENGINE = MergeTree ORDER BY url",
        f"INSERT INTO {db}.e VALUES ('https://x/file(1)', 'file(', 'url(', 'remote(', 'ENGINE = File')",
        f"SELECT url, file, domain(url), cutQueryString(url) FROM {db}.e WHERE url LIKE '%file(%'",
        "SELECT 'SELECT * FROM file(''/etc/passwd'')' -- file('x')",
        "SELECT name, engine FROM system.tables WHERE engine = 'File' LIMIT 1",
        "SELECT name, value, readonly FROM system.settings WHERE name = 'max_threads'",
        "SELECT version(), timezone()",
        "SELECT number FROM numbers(3) SETTINGS max_threads = 1",
        f"CREATE VIEW {db}.v AS SELECT engine FROM system.tables",
        "SELECT * FROM values('a UInt8', 1, 2)",
        f"DROP DATABASE {db}",
    ]
    for sql in statements:
        r = _q(endpoint, sql, admin)
        assert r.status_code == 200, (sql, r.text)
