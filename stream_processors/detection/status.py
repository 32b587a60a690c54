"""The ``track-issue-status`` agent: the compacted issue-status topic → the ``detect-issue-status`` table.

``detect-issues`` reads it to stay quiet about ignored issues and to tell a
regression (an event received after the issue was resolved). Applying a status
again is harmless: the latest record per fingerprint wins.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.types import StreamT
from pydantic import ValidationError

from schemas.issue_status import IssueStatusChange
from stream_processors.detection.context import SKIPPED, Detection

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


def install(detection: Detection) -> None:
    statuses = detection.statuses

    @detection.app.agent(detection.status_topic, name="track-issue-status")
    async def track_issue_status(stream: StreamT) -> None:
        async for event in stream.events():
            key = event.key
            if event.value is None:  # tombstone on the compacted topic: status forgotten
                if key is not None and key in statuses:
                    del statuses[key]
                    await statuses.written()
                continue
            try:
                change = IssueStatusChange.model_validate_json(event.value)
            except ValidationError as exc:
                SKIPPED.labels("invalid_issue_status").inc()
                log.warning("ignoring an invalid issue status record at %s/%s: %s", event.message.partition,
                            event.message.offset, exc.errors()[:1])
                continue
            key = change.fingerprint.encode()
            statuses[key] = kept_status(change, statuses.get(key), detection.issues.get(key))
            await statuses.written()
            log.info("issue %s is %s (%s)", change.fingerprint, change.status, change.changed_by)
