"""Quiet aiokafka's logging of transient broker states.

aiokafka logs, at ERROR or WARNING and on every retry, states that are normal
on a fresh or restarting broker: the group coordinator is not elected yet
(``__consumer_offsets`` is being created), a partition has no leader yet, a
connection attempt was refused. A fresh ``errstream sink`` printed
``GroupCoordinatorNotAvailableError`` at ERROR on every start, and a broker
that is down printed one ERROR line per retry. This filter demotes those
records to DEBUG, and lets one "cannot connect" line through per logger per
minute so an outage is still visible in the log without a storm. Everything
else aiokafka logs is untouched.
"""

from __future__ import annotations

import logging
import time

# aiokafka logs through one logger per module (logging.getLogger(__name__)); filters do not apply to records
# of child loggers, so each gets the filter.
AIOKAFKA_LOGGERS = (
    "aiokafka", "aiokafka.admin.client", "aiokafka.client", "aiokafka.cluster", "aiokafka.conn",
    "aiokafka.consumer.consumer", "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator",
    "aiokafka.consumer.subscription_state", "aiokafka.producer.producer", "aiokafka.producer.sender",
    "aiokafka.coordinator.assignors.abstract", "aiokafka.coordinator.assignors.range",
    "aiokafka.coordinator.assignors.roundrobin",
)
# States that resolve by themselves within seconds (elections, metadata propagation, rebalances).
TRANSIENT = (
    "CoordinatorNotAvailable", "NotCoordinator", "NotLeaderForPartition", "LeaderNotAvailable",
    "UnknownTopicOrPartition", "NodeNotReady", "RebalanceInProgress", "No partition metadata for topic",
    "not found in cluster metadata",
)
# The broker is unreachable: worth one line per minute, not one per retry.
UNREACHABLE = ("Unable connect to", "Unable to update metadata", "Unable to request metadata")


class QuietTransientKafkaStates(logging.Filter):
    def __init__(self, every_seconds: float = 60.0) -> None:
        super().__init__()
        self.every = every_seconds
        self.show_unreachable = True
        self.last_shown: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.INFO:
            return True
        text = record.getMessage()
        if any(marker in text for marker in UNREACHABLE):
            now = time.monotonic()
            if self.show_unreachable and now - self.last_shown.get(record.name, -self.every) >= self.every:
                self.last_shown[record.name] = now
                return True
            return self._demote(record)
        if any(marker in text for marker in TRANSIENT):
            return self._demote(record)
        return True

    @staticmethod
    def _demote(record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_FILTER = QuietTransientKafkaStates()


def quiet_transient_kafka_logs(silence_unreachable: bool = False) -> None:
    """Install the filter on aiokafka's loggers (idempotent).

    ``silence_unreachable`` is for one-shot commands: they report an unreachable broker themselves, in one
    line, so aiokafka's own "cannot connect" lines are demoted too.
    """
    _FILTER.show_unreachable = not silence_unreachable
    for name in AIOKAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
