"""Issue status changes and merges (compacted per-issue topics) → ClickHouse.

Every status change is appended to ``issue_status_history``; its materialized
view feeds ``issue_status`` (ReplacingMergeTree(changed_at) by fingerprint),
which keeps the latest status per issue. Merges follow the same path:
``issue_merge_history`` → ``issue_merges`` (the latest primary per fingerprint).
The consumer group keeps its offsets, so it reads each change before compaction
removes superseded ones; a brand-new group on an old topic gets the latest
change per issue, which is what the latest-per-issue tables need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from clickhouse_connect.driver.client import Client
from pydantic import BaseModel

from errstream_core.settings import Settings
from schemas.issue_merge import IssueMergeChange
from schemas.issue_status import IssueStatusChange
from sinks.clickhouse.topic_sink import TopicSink

STATUS_COLUMNS = ["fingerprint", "status", "changed_at", "changed_by", "note", "action", "assignee", "ignore_until",
                  "ignore_until_events", "ignore_events_baseline", "resolved_in_next_release", "resolved_releases",
                  "ignore_until_escalating", "escalating_forecast"]
MERGE_COLUMNS = ["fingerprint", "primary_fingerprint", "action", "changed_at", "changed_by", "note"]


def status_row(c: IssueStatusChange) -> list[object]:
    return [c.fingerprint, c.status, c.changed_at, c.changed_by, c.note, c.action, c.assignee, c.ignore_until,
            c.ignore_until_events, c.ignore_events_baseline, int(c.resolved_in_next_release), c.resolved_releases,
            int(c.ignore_until_escalating), c.escalating_forecast]


def merge_row(c: IssueMergeChange) -> list[object]:
    return [c.fingerprint, c.primary, c.action, c.changed_at, c.changed_by, c.note]


class StatusSink(TopicSink):
    name = "status"
    model: type[BaseModel] = IssueStatusChange
    table = "issue_status_history"
    columns = STATUS_COLUMNS
    row: Callable[[Any], list[object]] = staticmethod(status_row)

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        super().__init__(settings, self.topic_of(settings), client)

    @staticmethod
    def topic_of(settings: Settings) -> str:
        return settings.topic_issue_status

    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, msgs in batches.items():
            rows = await self.rows(await self.parse(msgs, self.model), self.row)
            await self.insert(self.table, [r for _, r in rows], self.columns, self.token(tp, msgs),
                              [m for m, _ in rows])


class MergeSink(StatusSink):
    """Merges and unmerges (``errstream issue merge|unmerge``, the web app) → ``issue_merge_history``."""

    name = "merges"
    model = IssueMergeChange
    table = "issue_merge_history"
    columns = MERGE_COLUMNS
    row = staticmethod(merge_row)

    @staticmethod
    def topic_of(settings: Settings) -> str:
        return settings.topic_issue_merges
