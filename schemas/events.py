"""The error event: what services publish to the ``errors`` topic.

The shape follows Sentry's event payload closely (exception chain with stack
frames, breadcrumbs, user, tags, trace context) so that the HTTP gateway can
translate Sentry SDK events without loss, but it is flatter and typed.

Ordering conventions (the same as Sentry's, so translations are 1:1):

* ``exceptions`` runs from the root cause to the exception that was finally
  raised: for ``raise B from A`` it is ``[A, B]``.
* ``stacktrace`` frames run from the outermost call to the frame that raised.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.free_form import check_free_form
from schemas.limits import (
    MAX_BREADCRUMBS,
    MAX_CHAIN,
    MAX_CONTEXT_LINE,
    MAX_CONTEXT_LINES,
    MAX_DEPTH,
    MAX_FINGERPRINT_PARTS,
    MAX_FRAME_VARS,
    MAX_FRAMES,
    MAX_FREE_FORM_VALUES,
    MAX_INT,
    MAX_MESSAGE,
    MAX_PATH,
    MAX_PERCENT,
    MAX_RECOVERY_ATTEMPTS,
    MAX_RESOURCE_COUNT,
    MAX_SHORT,
    MAX_TAGS,
    MAX_UINT32,
    MIN_INT,
    RECOVERY_METHOD_PATTERN,
)

Level = Literal["debug", "info", "warning", "error", "critical"]
LEVELS: tuple[Level, ...] = ("debug", "info", "warning", "error", "critical")
# Accepted on input (any letter case) and stored as the level they name.
LEVEL_ALIASES = {"warn": "warning", "fatal": "critical", "err": "error", "crit": "critical"}
_LEVEL_ALIASES = LEVEL_ALIASES

FREE_FORM = (
    f"Any JSON object, nested at most {MAX_DEPTH} levels, at most {MAX_FREE_FORM_VALUES} values, "
    f"integers within {MIN_INT}..{MAX_INT}, no NaN or Infinity."
)
TIMESTAMP = (
    "When the error happened (UTC; naive times are UTC). Outside the window the worker accepts around its "
    "receive time (ERRSTREAM_EVENT_MAX_PAST_SECONDS, ERRSTREAM_EVENT_MAX_FUTURE_SECONDS), or outside what "
    "the tables hold (1970-01-01..2106-02-07), the receive time is stored instead and this value is kept "
    "as original_timestamp."
)



def _free_form(value: dict[str, Any]) -> dict[str, Any]:
    if value:
        check_free_form(value)
    return value


FreeForm = Annotated[dict[str, Any], AfterValidator(_free_form)]
ContextLine = Annotated[str, Field(max_length=MAX_CONTEXT_LINE)]


def _utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC: every timestamp in errstream is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, frozen=False)


class StackFrame(_Model):
    filename: str | None = Field(default=None, max_length=MAX_PATH)
    abs_path: str | None = Field(default=None, max_length=MAX_PATH)
    module: str | None = Field(default=None, max_length=MAX_SHORT)
    function: str | None = Field(default=None, max_length=MAX_SHORT)
    lineno: int | None = Field(default=None, ge=0, le=MAX_UINT32)
    colno: int | None = Field(default=None, ge=0, le=MAX_UINT32)
    in_app: bool | None = None
    context_line: str | None = Field(default=None, max_length=MAX_CONTEXT_LINE)
    # Source lines around context_line and the frame's local variables, when the SDK sent them (Sentry's SDKs
    # do). None when absent, so events without them carry and cost nothing more. Locals are scrubbed (keys
    # such as ``password`` filtered, secrets and e-mail addresses in values) like ``context``.
    pre_context: list[ContextLine] | None = Field(default=None, max_length=MAX_CONTEXT_LINES)
    post_context: list[ContextLine] | None = Field(default=None, max_length=MAX_CONTEXT_LINES)
    vars: FreeForm | None = Field(default=None, max_length=MAX_FRAME_VARS, description=FREE_FORM)


class Mechanism(_Model):
    type: str = Field(default="generic", max_length=MAX_SHORT)
    handled: bool | None = None


class ExceptionInfo(_Model):
    type: str = Field(min_length=1, max_length=MAX_SHORT)
    value: str = Field(default="", max_length=MAX_MESSAGE)
    module: str | None = Field(default=None, max_length=MAX_SHORT)
    mechanism: Mechanism | None = None
    stacktrace: list[StackFrame] = Field(default_factory=list, max_length=MAX_FRAMES)


class User(_Model):
    id: str | None = Field(default=None, max_length=MAX_SHORT)
    email: str | None = Field(default=None, max_length=MAX_SHORT)
    username: str | None = Field(default=None, max_length=MAX_SHORT)
    ip_address: str | None = Field(default=None, max_length=64)


class RequestInfo(_Model):
    method: str | None = Field(default=None, max_length=16)
    url: str | None = Field(default=None, max_length=MAX_PATH)
    query_string: str | None = Field(default=None, max_length=MAX_PATH)
    headers: dict[str, str] = Field(default_factory=dict, max_length=100)


class Breadcrumb(_Model):
    timestamp: datetime | None = None
    type: str | None = Field(default=None, max_length=MAX_SHORT)
    category: str | None = Field(default=None, max_length=MAX_SHORT)
    message: str | None = Field(default=None, max_length=MAX_MESSAGE)
    level: str | None = Field(default=None, max_length=16)
    data: FreeForm = Field(default_factory=dict, max_length=50, description=FREE_FORM)

    @field_validator("timestamp")
    @classmethod
    def _timestamp_utc(cls, v: datetime | None) -> datetime | None:
        return _utc(v) if v else v


RECOVERY_METHODS = ("retry", "fallback", "circuit_breaker", "restart", "failover", "cache", "manual")


def check_recovery(attempted: bool, successful: bool, duration_ms: int | None) -> None:
    """The one cross-field rule, shared with the msgspec mirror: nothing recovers without an attempt."""
    if successful and not attempted:
        raise ValueError("recovery.successful is true but recovery.attempted is false")
    if duration_ms is not None and not attempted:
        raise ValueError("recovery.duration_ms is set but recovery.attempted is false")


class Recovery(_Model):
    """Whether the application recovered from this error, once per failure episode (not per attempt).

    ``duration_ms`` runs from the first failure of the episode to the moment it ended: the
    successful attempt (an automatic recovery time) or the last failed one.
    """

    attempted: bool = True
    successful: bool = False
    method: str = Field(default="retry", max_length=64, pattern=RECOVERY_METHOD_PATTERN,
                        description="how: " + ", ".join(RECOVERY_METHODS) + " or another lower-case name")
    attempts: int | None = Field(default=None, ge=0, le=MAX_RECOVERY_ATTEMPTS,
                                 description="attempts made in the episode, the first included")
    duration_ms: int | None = Field(default=None, ge=0, le=MAX_UINT32,
                                    description="first failure to the end of the episode, in milliseconds")

    @model_validator(mode="after")
    def _consistent(self) -> Recovery:
        check_recovery(self.attempted, self.successful, self.duration_ms)
        return self


class Resources(_Model):
    """A snapshot of the process and its host at capture; every field is optional (what the platform gives)."""

    cpu_percent: float | None = Field(default=None, ge=0.0, le=MAX_PERCENT, allow_inf_nan=False,
                                      description="the process's CPU use since the previous snapshot, 100 per core")
    rss_bytes: int | None = Field(default=None, ge=0, le=MAX_RESOURCE_COUNT, description="resident memory")
    memory_available_bytes: int | None = Field(default=None, ge=0, le=MAX_RESOURCE_COUNT,
                                               description="the host's available memory")
    threads: int | None = Field(default=None, ge=0, le=MAX_RESOURCE_COUNT)
    open_fds: int | None = Field(default=None, ge=0, le=MAX_RESOURCE_COUNT)
    load_1m: float | None = Field(default=None, ge=0.0, le=MAX_PERCENT, allow_inf_nan=False,
                                  description="the host's load average over one minute")
    read_bytes: int | None = Field(default=None, ge=0, le=MAX_RESOURCE_COUNT, description="disk bytes read")
    write_bytes: int | None = Field(default=None, ge=0, le=MAX_RESOURCE_COUNT, description="disk bytes written")


class ErrorEvent(_Model):
    """One error occurrence, as published by a service."""

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC), description=TIMESTAMP)
    service: str = Field(min_length=1, max_length=MAX_SHORT, pattern=r"^[A-Za-z0-9_.:\-/]+$")
    environment: str = Field(default="production", min_length=1, max_length=MAX_SHORT)
    release: str | None = Field(default=None, max_length=MAX_SHORT)
    level: Level = "error"
    platform: str = Field(default="python", max_length=32)
    server_name: str | None = Field(default=None, max_length=MAX_SHORT)
    logger: str | None = Field(default=None, max_length=MAX_SHORT)
    message: str | None = Field(default=None, max_length=MAX_MESSAGE)
    exceptions: list[ExceptionInfo] = Field(default_factory=list, max_length=MAX_CHAIN)
    user: User | None = None
    request: RequestInfo | None = None
    tags: dict[str, str] = Field(default_factory=dict, max_length=MAX_TAGS)
    context: FreeForm = Field(default_factory=dict, max_length=MAX_TAGS, description=FREE_FORM)
    breadcrumbs: list[Breadcrumb] = Field(default_factory=list, max_length=MAX_BREADCRUMBS)
    trace_id: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{16,32}$")
    span_id: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{8,16}$")
    parent_span_id: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{8,16}$")
    correlation_id: str | None = Field(default=None, max_length=MAX_SHORT)
    fingerprint: list[str] | None = Field(default=None, min_length=1, max_length=MAX_FINGERPRINT_PARTS)
    sdk: str | None = Field(default=None, max_length=MAX_SHORT)
    recovery: Recovery | None = Field(
        default=None, description="whether the application recovered from this error (absent: not reported)")
    resources: Resources | None = Field(
        default=None, description="the process's and host's resources when the error was captured")

    @field_validator("timestamp")
    @classmethod
    def _timestamp_utc(cls, v: datetime) -> datetime:
        return _utc(v)

    @field_validator("level", mode="before")
    @classmethod
    def _level_alias(cls, v: Any) -> Any:
        if isinstance(v, str):
            low = v.lower()
            return _LEVEL_ALIASES.get(low, low)
        return v

    @field_validator("tags")
    @classmethod
    def _tag_sizes(cls, v: dict[str, str]) -> dict[str, str]:
        for key, val in v.items():
            if not key or len(key) > MAX_SHORT:
                raise ValueError(f"tag key {key[:40]!r} must have 1..{MAX_SHORT} characters")
            if len(val) > MAX_SHORT:
                raise ValueError(f"tag {key!r} value is longer than {MAX_SHORT} characters")
        return v

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint_parts(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            for part in v:
                if not part or len(part) > MAX_SHORT:
                    raise ValueError(f"fingerprint parts must have 1..{MAX_SHORT} characters")
        return v
