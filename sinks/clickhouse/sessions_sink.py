"""Session aggregates (``settings.topic_sessions``) → ClickHouse ``session_counts_1m`` (release health).

Each record is a ``SessionAggregate`` from the gateway (Sentry ``session``/``sessions`` items) or from
errstream's middleware (requests per minute). Inserts carry the batch's deduplication token, so a replay
after a crash adds nothing twice.
"""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from schemas.sessions import SessionAggregate
from sinks.clickhouse.topic_sink import TopicSink

SESSION_COLUMNS = ["minute", "service", "environment", "release", "started", "errored", "crashed", "abnormal",
                   "errored_session_hashes", "crashed_session_hashes", "user_hashes", "crashed_user_hashes"]


def session_row(a: SessionAggregate) -> list[object]:
    return [a.minute, a.service, a.environment, a.release, a.started, a.errored, a.crashed, a.abnormal,
            a.errored_session_hashes, a.crashed_session_hashes, a.user_hashes, a.crashed_user_hashes]


class SessionsSink(TopicSink):
    name = "sessions"

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        super().__init__(settings, settings.topic_sessions, client)

    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, msgs in batches.items():
            rows = await self.rows(await self.parse(msgs, SessionAggregate), session_row)
            await self.insert("session_aggregates_in", [r for _, r in rows], SESSION_COLUMNS, self.token(tp, msgs),
                              [m for m, _ in rows])
