"""The embedded ClickHouse under an analyst's heavy query: the query is bounded, errstream's inserts go on.

Before: one lock served every statement and read-only queries had no limit, so
``SELECT count() FROM numbers_mt(8000000000) WHERE …`` as ``analyst`` delayed a stored event by 46 s.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from errstream.local.clickhouse import LocalClickHouse
from errstream.local.process import free_port
from errstream_core.local_credentials import ANALYST_USER, read_password
from errstream_core.settings import Settings
from sinks.clickhouse.client import connect

pytestmark = pytest.mark.e2e

LIMIT_SECONDS = 5.0
HEAVY = "SELECT count() FROM numbers_mt(8000000000) WHERE sipHash64(number) % 7 = 1"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalClickHouse]:
    ch = LocalClickHouse(state_dir=tmp_path_factory.mktemp("chlimits"), port=free_port(),
                         analyst_max_seconds=LIMIT_SECONDS, analyst_max_memory_bytes=500_000_000)
    ch.up()
    try:
        yield ch
    finally:
        ch.down()


def _analyst(ch: LocalClickHouse, sql: str, **params: str) -> httpx.Response:
    auth = (ANALYST_USER, read_password(ch.state_dir, ANALYST_USER) or "")
    return httpx.post(ch.url + "/", params={"query": sql, **params}, auth=auth, timeout=120)


def test_inserts_go_on_while_an_analysts_heavy_query_runs_and_the_query_is_cut_at_its_limit(
        endpoint: LocalClickHouse, settings: Settings) -> None:
    own = settings.model_copy(update={"clickhouse_url": endpoint.client_url,
                                      "clickhouse_database": f"limits_{uuid.uuid4().hex[:8]}"})
    client = connect(own)  # errstream's own client and login, as the sink uses them
    client.command(f"CREATE DATABASE IF NOT EXISTS {own.clickhouse_database}")
    table = f"{own.clickhouse_database}.ingest"
    client.command(f"CREATE TABLE {table} (n UInt64, at DateTime64(3)) ENGINE = MergeTree ORDER BY n")

    answer: dict[str, object] = {}

    def heavy() -> None:
        started = time.monotonic()
        r = _analyst(endpoint, HEAVY)
        answer.update(status=r.status_code, text=r.text, seconds=time.monotonic() - started)

    analyst = threading.Thread(target=heavy)
    analyst.start()
    latencies: list[float] = []
    n = 0
    while analyst.is_alive():
        started = time.monotonic()
        client.insert(table, [[n, datetime.now(UTC)]], column_names=["n", "at"])
        latencies.append(time.monotonic() - started)
        n += 1
    analyst.join()
    stored = client.query(f"SELECT count() FROM {table}").result_rows[0][0]
    print(f"{n} inserts during the analyst's query: max {max(latencies):.3f} s, "
          f"median {sorted(latencies)[len(latencies) // 2]:.3f} s; analyst query ended after {answer['seconds']:.1f} s")
    assert stored == n and n >= 10
    assert max(latencies) < 2.0, sorted(latencies)[-5:]
    assert answer["status"] != 200 and "TIMEOUT_EXCEEDED" in str(answer["text"]), answer
    assert float(str(answer["seconds"])) < LIMIT_SECONDS + 15


def test_an_analyst_cannot_lift_the_limits(endpoint: LocalClickHouse) -> None:
    for response in (_analyst(endpoint, "SELECT 1", max_execution_time="0"),
                     _analyst(endpoint, "SELECT 1", max_memory_usage="0"),
                     _analyst(endpoint, "SELECT 1 SETTINGS max_execution_time = 0"),
                     _analyst(endpoint, "SET max_memory_usage = 0")):
        assert response.status_code in (403, 400, 500) and response.status_code != 200, response.text
        assert "cannot be changed per query" in response.text or "read-only" in response.text, response.text
    limits = _analyst(endpoint, "SELECT name, value FROM system.settings WHERE name IN "
                                "('max_execution_time', 'max_memory_usage') ORDER BY name")
    assert limits.status_code == 200 and limits.text == f"max_execution_time\t{LIMIT_SECONDS:g}\nmax_memory_usage\t500000000\n"
    assert _analyst(endpoint, "SELECT count() FROM numbers(1000)").text == "1000\n"  # ordinary queries work
