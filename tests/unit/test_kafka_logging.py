"""aiokafka's transient broker states are logged quietly; real errors are not."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError, NotLeaderForPartitionError

from errstream_core.kafka_logging import quiet_transient_kafka_logs


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name} {record.getMessage()}")


@pytest.fixture
def captured() -> Iterator[Capture]:
    from errstream_core import kafka_logging

    kafka_logging._FILTER.last_shown.clear()  # once a minute per logger: start each test with a clean slate
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        quiet_transient_kafka_logs(silence_unreachable=False)


def test_transient_states_are_demoted_and_outages_shown_once(captured: Capture) -> None:
    quiet_transient_kafka_logs(silence_unreachable=False)
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    sender = logging.getLogger("aiokafka.producer.sender")
    client = logging.getLogger("aiokafka.client")
    for _ in range(5):  # what aiokafka logs on a fresh broker, once per retry
        coordinator.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
        sender.warning("Got error produce response on topic-partition %s, retrying. Error: %s", "errors-0",
                       NotLeaderForPartitionError)
        client.error('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, "[Errno 111] Connect call failed")
    coordinator.error("Attempt to join group failed due to fatal error: %s", "InvalidSessionTimeoutError")
    assert captured.lines == [
        'ERROR aiokafka.client Unable connect to "127.0.0.1:9092": [Errno 111] Connect call failed',
        "ERROR aiokafka.consumer.group_coordinator Attempt to join group failed due to fatal error: "
        "InvalidSessionTimeoutError",
    ]


def test_one_shot_commands_silence_connection_retries(captured: Capture) -> None:
    quiet_transient_kafka_logs(silence_unreachable=True)
    logging.getLogger("aiokafka.client").error('Unable connect to "%s:%s": %s', "127.0.0.1", 1, "refused")
    assert captured.lines == []
