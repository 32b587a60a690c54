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


# The longest files, measured in CI runs of 2026-12-07 (`--durations`), go first. `make test` hands whole files to
# its workers in collection order (`--dist loadfile`); a long file handed out last keeps one worker busy while the
# others idle. Only the order changes: every test still runs, and a file's tests keep their order.
LONG_FILES = (
    "tests/e2e/test_runtime_faults.py", "tests/e2e/test_detection_e2e.py", "tests/e2e/test_notify.py",
    "tests/e2e/test_rebalance.py", "tests/e2e/test_sink_exactly_once.py", "tests/e2e/test_issue_merge.py",
    "tests/e2e/test_sink_rebalance.py", "tests/e2e/test_benchmarks.py", "tests/e2e/test_grouping_upgrade_e2e.py",
    "tests/e2e/test_recovery_e2e.py", "tests/e2e/test_escalation.py", "tests/e2e/test_release_health.py",
)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    root = Path(str(config.rootpath))
    items.sort(key=lambda item: rank.get(Path(str(item.path)).relative_to(root).as_posix(), len(rank)))
