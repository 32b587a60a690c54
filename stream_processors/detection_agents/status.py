"""The agents that keep per-issue workflow state: compacted topics keyed by fingerprint → tables.

``track-issue-status``: the issue-status topic → ``detect-issue-status``. ``detect-issues`` reads it to
stay quiet about ignored issues and to tell a regression (an event received after the issue was resolved).

``track-issue-merges``: the merge topic → ``detect-issue-merges`` (fingerprint → its primary).
``detect-issues`` reads it so a merged fingerprint raises no new-issue alert and raises its other
alerts as its primary. The mapping is flat (``schemas/issue_merge.py``): one look-up, on the
fingerprint's own partition.

Applying a record again is harmless: the latest record per fingerprint wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from faust.types import StreamT, TopicT
from pydantic import BaseModel, ValidationError

from schemas.issue_merge import IssueMergeChange
from schemas.issue_status import IssueStatusChange
from stream_processors.detection_agents.context import SKIPPED, Detection, KeyPartitionedTable

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("errstream.detect")


def kept_status(change: IssueStatusChange, previous: dict[str, Any] | None, issue: Any) -> dict[str, Any]:
    """The status as the table keeps it: the change, plus ``detect_count`` for an ignore "until N more events".

    ``detect_count`` is detection's own count of the issue when the ignore arrived (the ``detect-issues``
    value of the same fingerprint, on the same partition), so "N more events" is counted in the same units
    ``detect-issues`` counts. A change that only carries the ignore forward (an assignment or a note on an
    ignored issue) keeps the count the ignore started from.
    """
    kept = change.model_dump(mode="json")
    if change.status != "ignored" or not change.ignore_until_events:
        return kept
    if change.action not in ("", "status") and previous is not None and previous.get("status") == "ignored" \
            and previous.get("detect_count") is not None:
        kept["detect_count"] = previous["detect_count"]
    else:
        kept["detect_count"] = int(issue.get("n", 0)) if isinstance(issue, dict) else 0
    return kept


def _follow(detection: Detection, topic: TopicT, table: KeyPartitionedTable, name: str, model: type[M],
            keep: Callable[[M, bytes], Any]) -> None:
    """An agent keeping ``table`` at the latest record per fingerprint of ``topic``; ``keep`` gives the value to
    store (None: forget the key). Invalid records are counted and skipped: they never stop the partition."""
    what = name.removeprefix("track-").replace("-", " ")

    @detection.app.agent(topic, name=name)
    async def follow(stream: StreamT) -> None:
        async for event in stream.events():
            key = event.key
            if event.value is None:  # tombstone on the compacted topic: forgotten
                if key is not None and key in table:
                    del table[key]
                    await table.written()
                continue
            try:
                record = model.model_validate_json(event.value)
            except ValidationError as exc:
                SKIPPED.labels(f"invalid_{what.replace(' ', '_')}").inc()
                log.warning("ignoring an invalid %s record at %s/%s: %s", what, event.message.partition,
                            event.message.offset, exc.errors()[:1])
                continue
            key = record.fingerprint.encode()  # type: ignore[attr-defined]
            value = keep(record, key)
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
            await table.written()


def install(detection: Detection) -> None:
    statuses = detection.statuses

    def keep_status(change: IssueStatusChange, key: bytes) -> dict[str, Any]:
        log.info("issue %s is %s (%s)", change.fingerprint, change.status, change.changed_by)
        return kept_status(change, statuses.get(key), detection.issues.get(key))

    def keep_merge(change: IssueMergeChange, key: bytes) -> str | None:
        log.info("issue %s is %s (%s)", change.fingerprint,
                 f"merged into {change.primary}" if change.primary else "its own issue again", change.changed_by)
        return change.primary or None

    _follow(detection, detection.status_topic, statuses, "track-issue-status", IssueStatusChange, keep_status)
    _follow(detection, detection.merge_topic, detection.merges, "track-issue-merges", IssueMergeChange, keep_merge)
