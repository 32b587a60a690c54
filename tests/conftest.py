from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.servers import clickhouse_server, isolated_settings, kafka_server
from errstream_core.settings import Settings
from sinks.clickhouse.client import connect
from tests.support.services import STORE_EVERYTHING_ENV, Service, running_services

# Set by the xdist controller for its test processes: the broker they share.
SHARED_KAFKA_ENV = "ERRSTREAM_TEST_SHARED_KAFKA"
_SHARED_KAFKA = pytest.StashKey[contextlib.ExitStack]()
UNIT_TESTS = Path(__file__).parent / "unit"


def _needs_servers(config: pytest.Config) -> bool:
    """False for a run of tests/unit only (`make unit`): nothing there talks to a broker."""
    paths = [Path(str(arg).split("::")[0]).resolve() for arg in config.args] or [Path(__file__).parent]
    return any(not path.is_relative_to(UNIT_TESTS) for path in paths)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist the controller starts one broker for all its test processes, before they start.

    Every test has topics, consumer groups and a database of its own (``isolated_settings``), so the
    processes need no broker each: one per process cost a JVM start (1.5 CPU-s) and about 1.4 CPU-s a
    minute of an idle JVM's upkeep, four times over. Tests that stop or restart a broker start their own
    (``own_kafka`` fixtures). ClickHouse stays one per process: the embedded server runs one read-write
    statement at a time, and four processes' migrations and queries would queue on it.
    """
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None) or not _needs_servers(config):
        return
    stack = contextlib.ExitStack()
    state = Path(tempfile.mkdtemp(prefix="errstream-test-kafka-"))
    stack.callback(shutil.rmtree, state, ignore_errors=True)
    try:
        os.environ[SHARED_KAFKA_ENV] = stack.enter_context(kafka_server(state))
    except BaseException:
        stack.close()
        raise
    config.stash[_SHARED_KAFKA] = stack


def pytest_unconfigure(config: pytest.Config) -> None:
    if (stack := config.stash.get(_SHARED_KAFKA, None)) is not None:
        os.environ.pop(SHARED_KAFKA_ENV, None)
        stack.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shared := os.environ.get(SHARED_KAFKA_ENV):
        yield shared
        return
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
