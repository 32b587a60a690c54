"""Issue workflow changes, published on a compacted topic keyed by fingerprint.

Workers keep the latest change per fingerprint as table state (it decides which
alerts fire: ignored issues stay silent, resolved + new event = regression) and
the sink writes every change to ``issue_status_history``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

IssueStatus = Literal["new", "acknowledged", "investigating", "resolved", "ignored"]


class IssueStatusChange(BaseModel):
    fingerprint: str = Field(pattern=r"^[0-9a-f]{32}$")
    status: IssueStatus
    changed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    changed_by: str = Field(default="", max_length=200)
    note: str = Field(default="", max_length=4_000)
