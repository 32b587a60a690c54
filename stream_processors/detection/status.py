"""The ``track-issue-status`` agent: the compacted issue-status topic → the ``detect-issue-status`` table.

``detect-issues`` reads it to stay quiet about ignored issues and to tell a
regression (an event received after the issue was resolved). Applying a status
again is harmless: the latest record per fingerprint wins.
"""

from __future__ import annotations

import logging

from faust.types import StreamT
from pydantic import ValidationError

from schemas.issue_status import IssueStatusChange
from stream_processors.detection.context import SKIPPED, Detection

log = logging.getLogger("errstream.detect")


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
            statuses[change.fingerprint.encode()] = change.model_dump(mode="json")
            await statuses.written()
            log.info("issue %s is %s (%s)", change.fingerprint, change.status, change.changed_by)
