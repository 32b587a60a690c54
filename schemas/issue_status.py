"""Issue workflow changes, published on a compacted topic keyed by fingerprint.

Workers keep the latest change per fingerprint as table state (it decides which
alerts fire: ignored issues stay silent, resolved + new event = regression) and
the sink writes every change to ``issue_status_history``.

Because compaction keeps only the latest record per fingerprint, every change
carries the issue's whole workflow state (status, assignee, ignore/resolve
conditions), not a delta: assigning an ignored issue publishes ``ignored`` again
with the new assignee. ``action`` says what the change did. The fields after
``note`` are optional and default to "none", so records written before they
existed still parse, and readers that do not know them keep working.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

# ``escalating``: an issue archived "until escalating" whose volume beat its forecast; detection puts it back
# in the stream with this status (an open status, like ``new``).
IssueStatus = Literal["new", "acknowledged", "investigating", "resolved", "ignored", "escalating"]
IssueAction = Literal["", "status", "assign", "unassign", "note", "owner_rule", "auto_resolve", "escalating"]
# ``changed_by`` of the changes errstream makes itself: an issue resolved because it was not seen for a while
AUTO_RESOLVER = "errstream:auto-resolve"
# ... and an archived issue that escalated (docs/detection.md#escalating-issues)
ESCALATION_DETECTOR = "errstream:escalating"


class IssueStatusChange(BaseModel):
    fingerprint: str = Field(pattern=r"^[0-9a-f]{32}$")
    status: IssueStatus
    changed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    changed_by: str = Field(default="", max_length=200)
    note: str = Field(default="", max_length=4_000)
    # --- optional workflow state (backwards compatible: absent = none) -------------------------
    action: IssueAction = ""  # "" = a status change from an older writer
    assignee: str = Field(default="", max_length=200)  # a person or a team; "" = unassigned
    # ignored "until": back to open after this time, and/or after this many more events than the issue
    # had when it was ignored (``ignore_events_baseline``, its true count then).
    ignore_until: datetime | None = None
    ignore_until_events: int | None = Field(default=None, ge=1)
    ignore_events_baseline: int | None = Field(default=None, ge=0)
    # resolved "in the next release": only an event of a release other than these is a regression.
    resolved_in_next_release: bool = False
    resolved_releases: list[str] = Field(default_factory=list, max_length=200)
    # ignored (archived) "until escalating": back in the stream once the issue's events in an hour exceed the
    # forecast, the hourly ceiling for each day of the week (Monday first, UTC) computed when it was archived
    # from its last 7 days (stream_processors/detection_rules/escalating.py).
    ignore_until_escalating: bool = False
    escalating_forecast: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list, max_length=7)

    @model_validator(mode="after")
    def _forecast_per_weekday(self) -> IssueStatusChange:
        if self.escalating_forecast and len(self.escalating_forecast) != 7:
            raise ValueError("escalating_forecast has one ceiling per day of the week: 7 numbers, or none")
        return self
