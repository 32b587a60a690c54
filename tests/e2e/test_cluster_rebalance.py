"""The rebalance scenario of ``test_rebalance.py`` on a three-broker cluster, with a broker down during it.

Before the first membership change the broker that leads most partitions is SIGKILLed; it comes back
only after the last change. So every hand-over of workers and sinks happens on two brokers, with
partition leaders and the group coordinator moved away from the lost one, and the run ends with the
broker rejoining. The same checks as on one broker: exact counts per issue, service and minute, one
row per event, each new issue alerted once, threshold alerts for the marks reached and no other.

    ERRSTREAM_TEST_CLUSTER=1 .venv/bin/python -m pytest tests/e2e/test_cluster_rebalance.py -q

(``ERRSTREAM_REBALANCE_ROUNDS`` sets the number of changes, as for the one-broker test;
``ERRSTREAM_CLUSTER_VICTIM=1`` picks the broker to stop instead of the one leading most partitions.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from errstream.local.kafka import LocalKafka
from errstream.local.servers import isolated_settings
from tests.e2e.test_rebalance import (  # noqa: F401 - the same checks, collected again here on the cluster
    test_clickhouse_counts_every_event_once_per_service_and_minute,
    test_clickhouse_holds_one_error_events_row_per_event,
    test_detection_counts_each_event_of_a_service_minute_exactly_once,
    test_detection_counts_each_event_of_an_issue_exactly_once,
    test_each_new_issue_is_alerted_once_by_alert_id,
    test_no_worker_or_sink_ends_on_its_own,
    test_the_worker_processed_every_event,
    test_threshold_alerts_name_exactly_the_marks_each_issue_reached,
)
from tests.support.cluster import CLUSTER_MARKS, fully_replicated, leader_of_most, three_brokers
from tests.support.rebalance import ROUNDS, Outcome, churn
from tests.support.services import wait_for

pytestmark = CLUSTER_MARKS


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with three_brokers(tmp_path_factory.mktemp("kafka3")) as kafka:
        yield kafka


@pytest.fixture(scope="module")
def churned(cluster: LocalKafka, clickhouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    settings = isolated_settings(cluster.bootstrap, clickhouse_url)
    down: list[int] = []

    def broker_down_during_changes(i: int) -> None:
        if i == 0:
            down.append(int(os.environ.get("ERRSTREAM_CLUSTER_VICTIM", 0)) or leader_of_most(settings))
            cluster.kill_node(down[0])
        elif i == ROUNDS:
            cluster.start_node(down[0], timeout=180)
            wait_for(lambda: fully_replicated(settings), bool, 300, f"broker {down[0]} back in every ISR")

    outcome = churn(settings, tmp_path_factory.mktemp("cluster-rebalance"), on_round=broker_down_during_changes)
    print(f"broker {down[0]} was down for all {ROUNDS} changes")  # noqa: T201
    yield outcome
