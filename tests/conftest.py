from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.servers import clickhouse_server, isolated_settings, kafka_server
from errstream_core.settings import Settings
from sinks.clickhouse.client import connect
from tests.support.services import STORE_EVERYTHING_ENV, Service, running_services


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with kafka_server(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with clickhouse_server(tmp_path_factory.mktemp("clickhouse")) as url:
        yield url


@pytest.fixture
def settings(kafka_bootstrap: str, clickhouse_url: str) -> Settings:
    """Settings isolated per test: own topics, consumer groups and database on the shared servers."""
    return isolated_settings(kafka_bootstrap, clickhouse_url)


@pytest.fixture
def ch(settings: Settings) -> Iterator[Client]:
    client = connect(settings)
    yield client
    client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    client.close()


@pytest.fixture
def services(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Service]]:
    """The real `errstream worker` and `errstream sink` processes, started for this test.

    Sampling is off here (every level at rate 1.0): these tests check delivery and
    expect every raw event stored; tests/e2e/test_sampling_e2e.py covers sampling.
    """
    with running_services(settings, tmp_path, STORE_EVERYTHING_ENV) as running:
        yield running
