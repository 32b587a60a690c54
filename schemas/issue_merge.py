"""Issue merges, published on a compacted topic keyed by the merged fingerprint.

Events keep their own fingerprints; a merge only says which issue a fingerprint's
events belong to: its ``primary``. One record per fingerprint whose group changed,
and the mapping is kept flat (every member names the group's primary directly,
never another member), so a reader needs one look-up, never a walk: the
detectors keep the latest record per fingerprint as table state, and the sink
writes every record to ``issue_merge_history``. ``primary == ""`` is an unmerge:
the fingerprint is its own issue again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

MergeAction = Literal["merge", "unmerge"]


class IssueMergeChange(BaseModel):
    fingerprint: str = Field(pattern=r"^[0-9a-f]{32}$")
    primary: str = Field(default="", pattern=r"^([0-9a-f]{32})?$")  # "" = its own issue (unmerged)
    action: MergeAction
    changed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    changed_by: str = Field(default="", max_length=200)
    note: str = Field(default="", max_length=4_000)

    @model_validator(mode="after")
    def _consistent(self) -> IssueMergeChange:
        if self.primary == self.fingerprint:
            raise ValueError("an issue cannot be merged into itself")
        if (self.action == "merge") != bool(self.primary):
            raise ValueError("a merge names its primary; an unmerge names none")
        return self
