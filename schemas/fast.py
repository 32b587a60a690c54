"""msgspec mirrors of ``ErrorEvent`` and ``ProcessedEvent`` for the worker's hot path.

The pydantic models in ``schemas.events`` and ``schemas.processed`` stay the
contract: producers, the gateway, the sinks and the exported JSON Schema use
them. The worker decodes every event of the ``errors`` topic, and msgspec, which
decodes straight into typed structs, does it several times cheaper than pydantic
building Python objects (figures: docs/performance.md, "Why the hot path is built
this way").

Two rules keep the mirror honest:

* it is never more lenient than pydantic. Whatever it rejects is validated
  again by pydantic (``stream_processors.event_processor``), which either rejects it
  with its precise error list or accepts it (lax conversions msgspec does not
  do, such as ``"lineno": "12"``), and then the event is re-decoded from
  pydantic's normalised output;
* ``tests/unit/test_fast_schema.py`` compares every field, default and constraint
  with the pydantic models, and checks on valid and mutated payloads that
  both accept and reject the same events and produce the same JSON.

Patterns end in ``\\Z``, not ``$``: msgspec uses Python's ``re``, where ``$``
also matches before a trailing newline, unlike pydantic's Rust regex.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from schemas import events as models
from schemas.events import _LEVEL_ALIASES, LEVELS, check_recovery
from schemas.free_form import check_free_form
from schemas.limits import (
    MAX_BREADCRUMBS,
    MAX_CHAIN,
    MAX_CONTEXT_LINE,
    MAX_CONTEXT_LINES,
    MAX_FINGERPRINT_PARTS,
    MAX_FRAME_VARS,
    MAX_FRAMES,
    MAX_MESSAGE,
    MAX_PATH,
    MAX_PERCENT,
    MAX_RECOVERY_ATTEMPTS,
    MAX_RESOURCE_COUNT,
    MAX_SHORT,
    MAX_TAGS,
    MAX_UINT32,
    RECOVERY_METHOD_PATTERN,
)

Short = Annotated[str, Meta(max_length=MAX_SHORT)]
NonEmptyShort = Annotated[str, Meta(min_length=1, max_length=MAX_SHORT)]
PathStr = Annotated[str, Meta(max_length=MAX_PATH)]
Message = Annotated[str, Meta(max_length=MAX_MESSAGE)]
UInt32 = Annotated[int, Meta(ge=0, le=MAX_UINT32)]
ContextLine = Annotated[str, Meta(max_length=MAX_CONTEXT_LINE)]
_LEVEL_SET = frozenset(LEVELS)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StackFrame(msgspec.Struct, gc=False):
    filename: PathStr | None = None
    abs_path: PathStr | None = None
    module: Short | None = None
    function: Short | None = None
    lineno: UInt32 | None = None
    colno: UInt32 | None = None
    in_app: bool | None = None
    context_line: Annotated[str, Meta(max_length=MAX_CONTEXT_LINE)] | None = None
    pre_context: Annotated[list[ContextLine], Meta(max_length=MAX_CONTEXT_LINES)] | None = None
    post_context: Annotated[list[ContextLine], Meta(max_length=MAX_CONTEXT_LINES)] | None = None
    vars: Annotated[dict[str, Any], Meta(max_length=MAX_FRAME_VARS)] | None = None  # checked by ErrorEvent


class Mechanism(msgspec.Struct, gc=False):
    type: Short = "generic"
    handled: bool | None = None


class ExceptionInfo(msgspec.Struct, gc=False):
    type: NonEmptyShort
    value: Message = ""
    module: Short | None = None
    mechanism: Mechanism | None = None
    stacktrace: Annotated[list[StackFrame], Meta(max_length=MAX_FRAMES)] = msgspec.field(default_factory=list)


class User(msgspec.Struct, gc=False):
    id: Short | None = None
    email: Short | None = None
    username: Short | None = None
    ip_address: Annotated[str, Meta(max_length=64)] | None = None


class RequestInfo(msgspec.Struct, gc=False):
    method: Annotated[str, Meta(max_length=16)] | None = None
    url: PathStr | None = None
    query_string: PathStr | None = None
    headers: Annotated[dict[str, str], Meta(max_length=100)] = msgspec.field(default_factory=dict)


class Breadcrumb(msgspec.Struct, gc=False):
    timestamp: datetime | None = None
    type: Short | None = None
    category: Short | None = None
    message: Message | None = None
    level: Annotated[str, Meta(max_length=16)] | None = None
    data: Annotated[dict[str, Any], Meta(max_length=50)] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timestamp is not None:
            self.timestamp = _utc(self.timestamp)
        if self.data:
            check_free_form(self.data)  # a ValueError here is a msgspec.ValidationError to the caller


class Recovery(msgspec.Struct, gc=False):
    attempted: bool = True
    successful: bool = False
    method: Annotated[str, Meta(max_length=64, pattern=RECOVERY_METHOD_PATTERN.removesuffix("$") + r"\Z")] = "retry"
    attempts: Annotated[int, Meta(ge=0, le=MAX_RECOVERY_ATTEMPTS)] | None = None
    duration_ms: UInt32 | None = None

    def __post_init__(self) -> None:
        check_recovery(self.attempted, self.successful, self.duration_ms)


Count = Annotated[int, Meta(ge=0, le=MAX_RESOURCE_COUNT)]
Percent = Annotated[float, Meta(ge=0.0, le=MAX_PERCENT)]


class Resources(msgspec.Struct, gc=False):
    cpu_percent: Percent | None = None
    rss_bytes: Count | None = None
    memory_available_bytes: Count | None = None
    threads: Count | None = None
    open_fds: Count | None = None
    load_1m: Percent | None = None
    read_bytes: Count | None = None
    write_bytes: Count | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class ErrorEvent(msgspec.Struct, kw_only=True, gc=False):
    event_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)
    timestamp: datetime = msgspec.field(default_factory=_now)
    service: Annotated[str, Meta(min_length=1, max_length=MAX_SHORT, pattern=r"^[A-Za-z0-9_.:\-/]+\Z")]
    environment: NonEmptyShort = "production"
    release: Short | None = None
    level: str = "error"
    platform: Annotated[str, Meta(max_length=32)] = "python"
    server_name: Short | None = None
    logger: Short | None = None
    message: Message | None = None
    exceptions: Annotated[list[ExceptionInfo], Meta(max_length=MAX_CHAIN)] = msgspec.field(default_factory=list)
    user: User | None = None
    request: RequestInfo | None = None
    tags: Annotated[dict[NonEmptyShort, Short], Meta(max_length=MAX_TAGS)] = msgspec.field(default_factory=dict)
    context: Annotated[dict[str, Any], Meta(max_length=MAX_TAGS)] = msgspec.field(default_factory=dict)
    breadcrumbs: Annotated[list[Breadcrumb], Meta(max_length=MAX_BREADCRUMBS)] = msgspec.field(
        default_factory=list)
    trace_id: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{16,32}\Z")] | None = None
    span_id: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{8,16}\Z")] | None = None
    parent_span_id: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{8,16}\Z")] | None = None
    correlation_id: Short | None = None
    fingerprint: Annotated[list[NonEmptyShort], Meta(min_length=1, max_length=MAX_FINGERPRINT_PARTS)] | None = None
    sdk: Short | None = None
    recovery: Recovery | None = None
    resources: Resources | None = None

    def __post_init__(self) -> None:
        level = self.level.lower()
        level = _LEVEL_ALIASES.get(level, level)
        if level not in _LEVEL_SET:
            raise ValueError(f"level {self.level!r} is not one of {LEVELS}")
        self.level = level
        self.timestamp = _utc(self.timestamp)
        if self.context:
            check_free_form(self.context)
        # Frames' locals are checked here, not in a StackFrame.__post_init__: that would be a Python call per
        # frame of every event, and most events carry no locals.
        for exc in self.exceptions:
            for frame in exc.stacktrace:
                if frame.vars:
                    check_free_form(frame.vars)


class ProcessedEvent(msgspec.Struct, gc=False):
    """Output only: built by the worker from values it computed, so it carries no constraints.

    The pydantic model checks the storable ranges (timestamps) when the sink's tests parse it; the
    worker guarantees them by clamping before it builds this.
    """

    event: ErrorEvent
    fingerprint: str
    title: str
    culprit: str
    exception_type: str
    sample_rate: float
    stored: bool
    drop_reason: str | None
    received_at: datetime
    grouping_rules: str = ""
    grouping_version: int = 1
    previous_fingerprint: str = ""
    original_timestamp: datetime | None = None


_DECODER = msgspec.json.Decoder(ErrorEvent)
_ENCODER = msgspec.json.Encoder()

DecodeError = msgspec.DecodeError  # ValidationError is a subclass


def decode_event(raw: bytes | str) -> ErrorEvent:
    """Raises ``DecodeError`` (or ``msgspec.ValidationError``) for anything the mirror will not accept."""
    return _DECODER.decode(raw)


def encode(value: ProcessedEvent | ErrorEvent) -> bytes:
    """The same JSON that pydantic's ``model_dump_json`` gives for the equivalent model."""
    return _ENCODER.encode(value)


# What grouping and scrubbing accept: the worker hands them the mirror, tests and producers the model.
AnyErrorEvent = models.ErrorEvent | ErrorEvent
AnyExceptionInfo = models.ExceptionInfo | ExceptionInfo
AnyStackFrame = models.StackFrame | StackFrame


def event_from_model(model: models.ErrorEvent) -> ErrorEvent:
    """The mirror of an event pydantic accepted (after a lax conversion the mirror refused).

    Raises ``DecodeError`` for the rare values pydantic accepts that the mirror cannot hold
    (integers beyond 64 bits).
    """
    return _DECODER.decode(model.model_dump_json())


def convert_event(fields: dict[str, Any]) -> ErrorEvent:
    """An ``ErrorEvent`` from plain Python values, as ``models.ErrorEvent.model_validate`` would build it.

    The mirror tries first; pydantic decides on whatever the mirror refuses, so its
    ``ValidationError`` (with its precise locations) is what a caller sees for bad input.
    """
    try:
        return msgspec.convert(fields, ErrorEvent)
    except msgspec.ValidationError:
        pass
    model = models.ErrorEvent.model_validate(fields)  # raises pydantic.ValidationError
    try:
        return event_from_model(model)
    except DecodeError as exc:
        raise ValueError(f"unsupported value: {exc}") from None
