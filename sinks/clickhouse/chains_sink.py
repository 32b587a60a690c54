"""Error-chain records (the worker's ``{app_id}-chains`` topic) → ClickHouse ``error_chains``.

The worker re-publishes a chain each time it grows; the table is a
ReplacingMergeTree(updated_at) by trace_id, so every version may be written
and reads with FINAL see the latest. Inserts carry the offset-range token, so a
replayed batch is discarded by ClickHouse.
"""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from schemas.chains import ErrorChain
from sinks.clickhouse.topic_sink import TopicSink

CHAIN_COLUMNS = [
    "trace_id", "root_event_id", "root_service", "root_fingerprint", "root_title", "started_at", "ended_at",
    "services", "event_count", "events.event_id", "events.service", "events.fingerprint", "events.title",
    "events.timestamp", "updated_at",
]


def chain_row(c: ErrorChain) -> list[Any]:
    return [
        c.trace_id, c.root_event_id, c.root_service, c.root_fingerprint, c.root_title, c.started_at, c.ended_at,
        c.services, c.event_count,
        [e.event_id for e in c.events], [e.service for e in c.events], [e.fingerprint for e in c.events],
        [e.title for e in c.events], [e.timestamp for e in c.events],
        c.updated_at,
    ]


def chains_topic(settings: Settings) -> str:
    """The worker's chain topic: internal topics are prefixed by the faust app id, unless configured."""
    return settings.chains_topic


class ChainsSink(TopicSink):
    name = "chains"

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        super().__init__(settings, chains_topic(settings), client)

    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, msgs in batches.items():
            rows = await self.rows(await self.parse(msgs, ErrorChain), chain_row)
            await self.insert("error_chains", [r for _, r in rows], CHAIN_COLUMNS, self.token(tp, msgs),
                              [m for m, _ in rows])
