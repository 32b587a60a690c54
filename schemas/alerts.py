"""Alert events published to the ``alerts`` topic.

Consumers must be able to deduplicate: ``dedup_key`` is stable for "the same
condition" (kind + scope), and detectors respect a cooldown per key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# ``escalation``: an open issue nobody acknowledged for a while (notify's escalation policy);
# ``escalating``: an issue archived "until escalating" whose volume beat its forecast (detection).
AlertKind = Literal["new_issue", "regression", "threshold", "spike", "error_chain", "escalation", "escalating", "rule"]
ALERT_NAMESPACE = uuid.UUID("6f1c1f0e-9a52-4c57-9a8e-2f1d8a4d1e5b")


def alert_id(*parts: object) -> uuid.UUID:
    """A deterministic id from an alert's identity: re-emitting the same alert gives the same id."""
    return uuid.uuid5(ALERT_NAMESPACE, "|".join(str(p) for p in parts))
Severity = Literal["info", "warning", "error", "critical"]


class AlertEvent(BaseModel):
    alert_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    kind: AlertKind
    severity: Severity
    dedup_key: str = Field(max_length=400)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    service: str
    fingerprint: str | None = None
    title: str = Field(max_length=400)
    message: str = Field(default="", max_length=4_000)
    trigger_event_id: uuid.UUID | None = None
    trigger_event_time: datetime | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    # who owns the issue: its assignee, else the first matching ownership rule (set by the alerts sink)
    owner: str | None = Field(default=None, max_length=200)
