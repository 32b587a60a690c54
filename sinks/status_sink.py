"""Issue status changes (compacted ``settings.topic_issue_status``) → ClickHouse.

Every change is appended to ``issue_status_history``; its materialized view
feeds ``issue_status`` (ReplacingMergeTree(changed_at) by fingerprint), which
keeps the latest status per issue. The consumer group keeps its offsets, so it
reads each change before compaction removes superseded ones; a brand-new group
on an old topic gets the latest change per issue, which is what ``issue_status``
needs.
"""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from schemas.issue_status import IssueStatusChange
from sinks.topic_sink import TopicSink

STATUS_COLUMNS = ["fingerprint", "status", "changed_at", "changed_by", "note", "action", "assignee", "ignore_until",
                  "ignore_until_events", "ignore_events_baseline", "resolved_in_next_release", "resolved_releases"]


def status_row(c: IssueStatusChange) -> list[object]:
    return [c.fingerprint, c.status, c.changed_at, c.changed_by, c.note, c.action, c.assignee, c.ignore_until,
            c.ignore_until_events, c.ignore_events_baseline, int(c.resolved_in_next_release), c.resolved_releases]


class StatusSink(TopicSink):
    name = "status"

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        super().__init__(settings, settings.topic_issue_status, client)

    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, msgs in batches.items():
            rows = await self.rows(await self.parse(msgs, IssueStatusChange), status_row)
            await self.insert("issue_status_history", [r for _, r in rows], STATUS_COLUMNS, self.token(tp, msgs),
                              [m for m, _ in rows])
