"""What the issue stream, issue page and event page return: the API's models, filters and their bounds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from reports.recovery import IssueRecovery

SORTS: tuple[str, ...] = ("last_seen", "first_seen", "events", "users", "trend")
STATUSES = ("new", "acknowledged", "investigating", "resolved", "ignored", "regressed", "escalating")
# escalating: archived until escalating, and it did (docs/detection.md#escalating-issues)
OPEN_STATUSES = ("new", "acknowledged", "investigating", "regressed", "escalating")
LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_LIMIT = 100


class IssueFilter(BaseModel):
    """Filters of the issue stream; every field optional. ``status`` may hold ``open`` (= the open ones)."""

    service: str | None = None
    environment: str | None = None
    release: str | None = None
    level: str | None = None  # the issue's worst level
    status: list[str] = Field(default_factory=list)
    assignee: str | None = None  # "none" = unassigned
    first_seen_from: datetime | None = None
    first_seen_to: datetime | None = None
    last_seen_from: datetime | None = None
    last_seen_to: datetime | None = None
    q: str | None = Field(default=None, max_length=200)  # text in title, culprit or (last 14 days) message


class IssueSummary(BaseModel):
    fingerprint: str
    title: str
    culprit: str
    exception_type: str
    level: str
    status: str
    assignee: str
    services: list[str]
    environments: list[str]
    releases: list[str] = Field(default_factory=list)  # every release it was seen in (sorted as text)
    first_seen: datetime
    last_seen: datetime
    events: int  # true count, all time (sampling never reduces it)
    users: int
    events_24h: int = 0
    events_14d: int = 0
    series_24h: list[int] = Field(default_factory=list)  # 24 hourly counts, oldest first
    series_14d: list[int] = Field(default_factory=list)  # 14 daily counts, oldest first
    members: list[str] = Field(default_factory=list)  # the fingerprints whose events it counts (more than one: merged)


class IssuePage(BaseModel):
    issues: list[IssueSummary]
    next_cursor: str | None  # pass as ``cursor`` for the next page; None = last page


class StatusChangeRow(BaseModel):
    changed_at: datetime
    status: str
    action: str
    changed_by: str
    note: str
    assignee: str


class MergeRow(BaseModel):
    """One merge or unmerge of a fingerprint of this issue's group (who and when, like a status change)."""

    changed_at: datetime
    action: str  # merge | unmerge
    fingerprint: str
    primary: str  # "" for an unmerge
    changed_by: str
    note: str


class TagValue(BaseModel):
    value: str
    count: int


class AlertRow(BaseModel):
    alert_id: str
    kind: str
    severity: str
    created_at: datetime
    service: str
    fingerprint: str
    title: str
    message: str


class ChainEvent(BaseModel):
    event_id: str
    service: str
    fingerprint: str
    title: str
    timestamp: datetime


class ChainRow(BaseModel):
    trace_id: str
    started_at: datetime
    ended_at: datetime
    root_service: str
    root_fingerprint: str
    root_title: str
    root_event_id: str
    services: list[str]
    event_count: int
    events: list[ChainEvent] = Field(default_factory=list)


class IssueDetail(IssueSummary):
    stored: int
    releases: list[str]
    first_release: str
    last_release: str
    raw_status: str  # as last recorded (``status`` applies the ignore/resolve conditions)
    status_changed_at: datetime | None
    ignore_until: datetime | None
    ignore_until_events: int | None
    ignore_until_escalating: bool = False  # archived until escalating
    escalating_forecast: list[int] = Field(default_factory=list)  # its hourly ceilings, Monday first (UTC)
    resolved_in_next_release: bool
    history: list[StatusChangeRow]
    merges: list[MergeRow] = Field(default_factory=list)
    tags: dict[str, list[TagValue]]
    timeline_24h: list[tuple[datetime, int]]  # hourly
    timeline_14d: list[tuple[datetime, int]]  # daily
    alerts: list[AlertRow]
    chains: list[ChainRow]
    latest_event_id: str | None
    recovery: IssueRecovery | None = None  # failure episodes the application tried to recover from, all time


class EventSummary(BaseModel):
    event_id: str
    timestamp: datetime
    service: str
    environment: str
    release: str
    level: str
    message: str
    user_id: str
    server_name: str
    trace_id: str


class EventPage(BaseModel):
    events: list[EventSummary]
    next_cursor: str | None


class Frame(BaseModel):
    filename: str | None = None
    abs_path: str | None = None
    module: str | None = None
    function: str | None = None
    lineno: int | None = None
    colno: int | None = None
    in_app: bool = False
    context_line: str | None = None
    pre_context: list[str] | None = None  # source lines before context_line, when the SDK sent them
    post_context: list[str] | None = None
    vars: dict[str, Any] | None = None  # the frame's local variables as the worker scrubbed them

    @property
    def source(self) -> list[tuple[int | None, str, bool]]:
        """(line number, text, is the frame's line) for the lines around the frame, numbered from ``lineno``."""
        if not self.context_line and not self.pre_context and not self.post_context:
            return []
        pre, post, base = self.pre_context or [], self.post_context or [], self.lineno

        def number(offset: int) -> int | None:
            return None if base is None else base + offset

        return ([(number(k - len(pre)), line, False) for k, line in enumerate(pre)]
                + [(base, self.context_line or "", True)]
                + [(number(k + 1), line, False) for k, line in enumerate(post)])


class ExceptionRow(BaseModel):
    type: str
    value: str
    module: str | None = None
    mechanism: dict[str, Any] | None = None
    frames: list[Frame]  # outermost call first, the raising frame last


class EventDetail(EventSummary):
    fingerprint: str
    title: str
    culprit: str
    exception_type: str
    logger: str
    platform: str
    received_at: datetime
    sample_rate: float
    span_id: str
    correlation_id: str
    request: dict[str, str]
    user: dict[str, str]
    tags: dict[str, str]
    contexts: dict[str, Any]
    exceptions: list[ExceptionRow]  # root cause first, the finally raised one last (as stored)
    breadcrumbs: list[dict[str, Any]]
    recovery: dict[str, Any] | None = None  # the event's recovery object, when it carried one
    resources: dict[str, Any] | None = None  # the process's and host's resources at capture (Python SDK)


class BadQuery(ValueError):
    """A filter, sort or cursor the caller got wrong (the API answers 400 with the message)."""
