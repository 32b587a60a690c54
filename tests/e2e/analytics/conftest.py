"""The analytics tests share one loaded history per module (read-only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from tests.e2e.analytics.data import Dataset, build, load


@pytest.fixture(scope="module")
def loaded(clickhouse_url: str) -> Iterator[tuple[Client, Dataset]]:
    """One database per test module, loaded once with this history and only read by the tests."""
    settings = Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"errstream_a{uuid.uuid4().hex[:10]}")
    migrate(settings)
    client = connect(settings, database=settings.clickhouse_database)
    ds = build()
    load(client, settings.clickhouse_database, ds)
    yield client, ds
    client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    client.close()
