"""OTLP spans and log records → ``ErrorEvent``: what an OpenTelemetry exception means in errstream.

What becomes an event (docs/ingestion.md, "OpenTelemetry (OTLP/HTTP)", has the user's table):

* a span event named ``exception`` (what ``span.record_exception`` writes): one event per exception,
  carrying the span's trace id, span id and parent span id, so chain detection
  (``stream_processors/detection_rules/chains.py``) links it with SDK errors of the same trace;
* a log record with ``exception.type`` or ``exception.message`` attributes: an exception event;
* a log record of severity ERROR or above without them: a message event (body as message, scope name as
  logger), as the Sentry SDKs' logging integrations report ``logger.error(...)``;
* a span with status ERROR and no ``exception`` event: **no event**. Such a span usually marks a failed
  request whose exception, if any, was recorded elsewhere (a child span, a log record); an event per failed
  span would double-count those and turn every 5xx into an issue without a stack. They are counted
  (``errstream_gateway_otlp_records_ignored{reason="error_span_without_exception"}``).

Resource attributes give service (``service.name``, checked against the key as the Sentry path does),
release (``service.version``), environment (``deployment.environment.name`` or the older
``deployment.environment``), server name (``host.name``) and platform (``telemetry.sdk.language``). Span,
event and log attributes become tags (scalars, at most ``MAX_TAGS``, values cut to ``MAX_SHORT``); the
resource's other attributes go to ``context["otel_resource"]``. Scrubbing happens in the gateway's publish step, as for every
other endpoint. Event ids are derived from the record (trace, span, time, type), so an exporter's retry of the
same batch stores each event once.

Cost: this runs for every OTLP error, so what repeats is worked out once and reused — each distinct resource
(``_resource``), span event (``_span_exception``: attributes, parsed trace, tags) and printed trace
(``stacktrace_text.parse_chain``, validated schema structs) — and each event gets its own copies, which
msgspec passes through without validating again (figures: docs/performance.md, "OTLP mode").
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from msgspec.structs import replace
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pydantic import ValidationError

from producers.gateway.otlp_wire import hex_id
from producers.gateway.projects import Project
from producers.gateway.stacktrace_text import MAX_TEXT, copy_chain, parse_chain
from producers.gateway.stacktrace_text.common import cut, split_type
from schemas.fast import ErrorEvent, ExceptionInfo, Mechanism, convert_event
from schemas.free_form import check_free_form
from schemas.limits import MAX_INT, MAX_MESSAGE, MAX_SHORT, MAX_TAGS, MIN_INT

SEVERITY_ERROR = 17  # SeverityNumber: 17-20 ERROR, 21-24 FATAL
MAX_EVENTS = 1_000  # events taken from one request (as for POST /api/v1/events); the rest are refused
MAX_VALUE_DEPTH = 4  # an array or kvlist attribute is rendered as text this deep, then "…"
PROJECT_ROOT = "errstream.project_root"  # resource attribute: the application's source root (in-app frames)
STACKTRACE = "exception.stacktrace"  # kept up to the parsers' MAX_TEXT, not cut to a message's length
_PLATFORMS = {"python": "python", "java": "java", "nodejs": "node", "webjs": "javascript", "go": "go",
              "dotnet": "csharp", "ruby": "ruby", "php": "php", "rust": "native", "cpp": "native",
              "swift": "cocoa", "erlang": "elixir"}
_SPLIT_TYPES = frozenset({"python", "java"})  # their Sentry SDKs send "Error" + module, not "pkg.Error"
_SCALARS = frozenset({"bool_value", "int_value", "double_value"})
_ERROR = Status.STATUS_CODE_ERROR
# Resource attributes that become event fields; the others go to context["otel_resource"].
_MAPPED_RESOURCE = frozenset({"service.name", "service.version", "deployment.environment.name",
                              "deployment.environment", "host.name", "telemetry.sdk.language", "telemetry.sdk.name",
                              "telemetry.sdk.version", PROJECT_ROOT})


class Mapped:
    """What one request turned into: events to publish, and what was refused or left out, counted.

    A plain class with plain dicts (not a dataclass of ``Counter``): one is made per request, and
    ``Counter()`` alone cost a microsecond.
    """

    __slots__ = ("errors", "events", "ignored", "rejected", "stacktraces")

    def __init__(self) -> None:
        self.events: list[ErrorEvent] = []
        self.rejected = 0  # spans or log records refused (OTLP partial success)
        self.errors: list[str] = []
        self.ignored: dict[str, int] = {}
        self.stacktraces: dict[tuple[str, str], int] = {}  # (language, parsed|unparsed)

    def refuse(self, what: str, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < 5:
            self.errors.append(f"{what}: {reason}"[:300])

    def ignore(self, reason: str) -> None:
        self.ignored[reason] = self.ignored.get(reason, 0) + 1

    @property
    def error_message(self) -> str:
        return "; ".join(self.errors)


def any_value(value: AnyValue, depth: int = 0, limit: int = MAX_MESSAGE) -> Any:
    """An attribute value as plain Python, long strings cut to ``limit``, nesting bounded."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        text = value.string_value
        return text if len(text) <= limit else cut(text, limit)
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind == "bytes_value":
        return f"<{len(value.bytes_value)} bytes>"
    if depth >= MAX_VALUE_DEPTH:
        return "…"
    if kind == "array_value":
        return [any_value(v, depth + 1) for v in value.array_value.values[:20]]
    if kind == "kvlist_value":
        return {kv.key[:MAX_SHORT]: any_value(kv.value, depth + 1) for kv in value.kvlist_value.values[:20]}
    return None


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    """Attributes as plain Python: one pass over the protobuf, each value read once."""
    out: dict[str, Any] = {}
    for kv in kvs:
        key = kv.key
        if not key:
            continue
        if len(key) > MAX_SHORT:
            key = key[:MAX_SHORT]
        value = kv.value
        if value.WhichOneof("value") == "string_value":  # most values: read here, without any_value's call
            text = value.string_value
            limit = MAX_TEXT if key == STACKTRACE else MAX_MESSAGE
            out[key] = text if len(text) <= limit else cut(text, limit)
        else:
            out[key] = any_value(value)
    return out


def _text(value: Any, limit: int = MAX_SHORT) -> str:
    if value.__class__ is str:
        return value if len(value) <= limit else cut(value, limit) or ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return cut(msgspec.json.encode(value).decode(), limit) or ""


def _tags(tags: dict[str, str], *sources: dict[str, Any]) -> dict[str, str]:
    """``tags`` (the fixed ones, changed in place) and then the attributes of ``sources``, first come first kept."""
    for source in sources:
        for key, value in source.items():
            if value is None or value == "" or key in tags or key.startswith("exception."):
                continue
            if len(tags) >= MAX_TAGS:
                return tags
            tags[key] = _text(value)
    return tags


def _time(nanos: int) -> datetime | None:
    if not nanos:
        return None
    try:
        return datetime.fromtimestamp(nanos / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return None


_NO_PART = object()


def _event_id(a: object, b: object, c: object, d: object, e: object, f: object = _NO_PART) -> str:
    """A uuid (as hex; the schema parses it) derived from the record, so a re-sent record keeps its id.

    The parts joined by an f-string, not ``"\\x1f".join(map(str, ...))``: half the cost, the same text."""
    text = f"{a}\x1f{b}\x1f{c}\x1f{d}\x1f{e}" if f is _NO_PART else f"{a}\x1f{b}\x1f{c}\x1f{d}\x1f{e}\x1f{f}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class _Resource:
    service: str
    named: bool  # service.name was given (and must be checked against the key)
    # service, release, environment, server_name, platform, sdk and context: the same for every event of the
    # resource, shared and never changed (the scrubber copies what it changes)
    fields: dict[str, Any]
    # context["otel_resource"]: checked against the schema's free-form bounds once, here, and given to each
    # event after its validation (shared, never changed: the scrubber copies what it changes)
    context: dict[str, Any]
    language: str
    root: str | None


MAX_CACHED_RESOURCE = 4_096  # bytes: a service's resource is the same in every export; a huge one is not cached


def _resource(resource: Resource, project: Project) -> _Resource:
    """The resource's fields, checked against the key; parsed once per distinct resource of a project."""
    raw = resource.SerializeToString()
    res = (_resource_from(raw, project.service) if len(raw) <= MAX_CACHED_RESOURCE
           else _resource_fields(attributes(resource.attributes), project.service))
    if res.named:
        project.check_service(res.service)  # 403 for the whole request, as the Sentry and JSON endpoints refuse
    return res


@lru_cache(maxsize=256)
def _resource_from(raw: bytes, default_service: str) -> _Resource:
    return _resource_fields(attributes(Resource.FromString(raw).attributes), default_service)


def _resource_fields(attrs: dict[str, Any], default_service: str) -> _Resource:
    name = attrs.get("service.name")
    named = isinstance(name, str) and bool(name) and not name.startswith("unknown_service")  # SDKs' default
    language = str(attrs.get("telemetry.sdk.language") or "").lower()
    env = attrs.get("deployment.environment.name") or attrs.get("deployment.environment")
    sdk = attrs.get("telemetry.sdk.name")
    other = {k: (v if _storable(v) else _text(v)) for k, v in
             [(k, v) for k, v in attrs.items() if k not in _MAPPED_RESOURCE][:MAX_TAGS]}
    context = {"otel_resource": other} if other else {}
    check_free_form(context)  # scalars within range, one level below the top: cannot fail, checked all the same
    service = str(name) if named else default_service
    fields = {
        "service": service,
        "release": _text(attrs["service.version"]) if attrs.get("service.version") else None,
        "environment": _text(env) if env else "production",
        "server_name": _text(attrs["host.name"]) if attrs.get("host.name") else None,
        "platform": _PLATFORMS.get(language, "other"),
        "sdk": _text(f"{sdk}/{attrs.get('telemetry.sdk.version', '')}") if sdk else None,
    }
    root = attrs.get(PROJECT_ROOT)
    return _Resource(service, named, fields, context, language, root if isinstance(root, str) and root else None)


def _storable(value: Any) -> bool:
    """A scalar the schema's free-form context holds as it is (else it is kept as text)."""
    if isinstance(value, (str, bool)):
        return True
    if isinstance(value, int):
        return MIN_INT <= value <= MAX_INT
    return isinstance(value, float) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class _Exception:
    """What ``exception.*`` and the other attributes of a span event or log record give: the same for every
    event that repeats them (the same bug), so a span event's is worked out once (``_span_exception``)."""

    chain: tuple[Any, ...]  # ExceptionInfo structs (validated; copied per event), or a dict the event validates
    type: str  # the outermost exception's
    stacktrace: tuple[str, str] | None  # (language, parsed|unparsed), counted per event
    tags: tuple[tuple[str, str], ...]  # the other attributes as tags, at most MAX_TAGS

    def exceptions(self) -> list[Any]:
        return [replace(e, stacktrace=[replace(f) for f in e.stacktrace]) if isinstance(e, ExceptionInfo)
                else dict(e) for e in self.chain]


def _exception(attrs: dict[str, Any], language: str, root: str | None) -> _Exception:
    """The exception chain from ``exception.*`` attributes, frames parsed from the printed trace."""
    message = _text(attrs.get("exception.message") or "", MAX_MESSAGE)
    escaped = attrs.get("exception.escaped")
    mechanism = Mechanism("opentelemetry", (not escaped) if isinstance(escaped, bool) else None)
    tags = tuple((k, _text(v)) for k, v in attrs.items()
                 if v is not None and v != "" and not k.startswith("exception."))[:MAX_TAGS]
    text = attrs.get(STACKTRACE)
    counted = None
    if text.__class__ is str and text and not text.isspace():
        parsed = parse_chain(text, language, root)
        lang = language or "unknown"
        counted = (lang if lang in _PLATFORMS else "other", "parsed" if parsed else "unparsed")
        if parsed:
            chain = copy_chain(parsed)
            last = chain[-1]
            last.mechanism = mechanism
            if not last.value:
                last.value = message  # bounded by _text: the copies are not validated again
            return _Exception(tuple(chain), last.type, counted, tags)
    type_ = _text(attrs.get("exception.type") or "")
    name, module = split_type(type_) if language in _SPLIT_TYPES else (type_, None)
    name = name or "Error"
    fallback: dict[str, Any] = {"type": name, "module": module, "value": message, "mechanism": mechanism,
                                "stacktrace": []}
    try:
        return _Exception((msgspec.convert(fallback, ExceptionInfo),), name, counted, tags)
    except msgspec.ValidationError:  # refused with the event, with pydantic's reason
        return _Exception((fallback,), name, counted, tags)


MAX_CACHED_EVENT = 16_384  # bytes of a span event (its attributes) whose mapping is kept for the next


def _span_exception(event: Span.Event, res: _Resource) -> _Exception:
    """``_exception`` of a span event, worked out once per distinct event: a bug that repeats sends the same
    type, message and trace each time, and reading the attributes out of protobuf was most of the cost.

    The key is the event as protobuf without its time (cleared here: the caller has read it)."""
    event.ClearField("time_unix_nano")
    raw = event.SerializeToString()
    if len(raw) > MAX_CACHED_EVENT:
        return _exception(attributes(event.attributes), res.language, res.root)
    return _cached_exception(raw, res.language, res.root)


@lru_cache(maxsize=1_024)
def _cached_exception(raw: bytes, language: str, root: str | None) -> _Exception:
    return _exception(attributes(Span.Event.FromString(raw).attributes), language, root)


def _count_stacktrace(mapped: Mapped, exc: _Exception) -> None:
    if exc.stacktrace is not None:
        mapped.stacktraces[exc.stacktrace] = mapped.stacktraces.get(exc.stacktrace, 0) + 1


def _convert(fields: dict[str, Any], res: _Resource, what: str, mapped: Mapped) -> None:
    if len(mapped.events) >= MAX_EVENTS:
        mapped.refuse(what, f"more than {MAX_EVENTS} errors in one request")
        return
    try:
        event = convert_event(fields)
        event.context = res.context  # checked once per resource: not walked again for every event
        mapped.events.append(event)
    except ValidationError as exc:
        first = exc.errors()[0]
        mapped.refuse(what, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    except (ValueError, TypeError) as exc:
        mapped.refuse(what, str(exc))


def map_traces(request: ExportTraceServiceRequest, project: Project) -> Mapped:
    mapped = Mapped()
    for rs in request.resource_spans:
        res = _resource(rs.resource, project)
        for ss in rs.scope_spans:
            scope = ss.scope.name
            for span in ss.spans:
                found = False
                for index, event in enumerate(span.events):
                    if event.name != "exception":
                        continue
                    if not found:  # the span's fields, read once for its exception events
                        found = True
                        span_attrs = attributes(span.attributes)
                        trace_id, span_id, span_name = hex_id(span.trace_id), hex_id(span.span_id), span.name
                        parent_span_id, user = hex_id(span.parent_span_id), _user(span_attrs)
                    nanos = event.time_unix_nano
                    exc = _span_exception(event, res)
                    _count_stacktrace(mapped, exc)
                    tags = {"otel.span_name": _text(span_name)} if span_name else {}
                    if scope:
                        tags["otel.scope"] = _text(scope)
                    for key, value in exc.tags:
                        if key not in tags and len(tags) < MAX_TAGS:
                            tags[key] = value
                    fields = {**res.fields, "level": "error", "exceptions": exc.exceptions(),
                              "event_id": _event_id(trace_id, span_id, nanos, index, exc.type),
                              "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent_span_id,
                              "tags": _tags(tags, span_attrs), "user": user}
                    when = _time(nanos) or _time(span.end_time_unix_nano)
                    if when:
                        fields["timestamp"] = when
                    _convert(fields, res, f"span {span_id or '?'}", mapped)
                if not found:
                    mapped.ignore("error_span_without_exception" if span.status.code == _ERROR
                                  else "span_without_exception")
    return mapped


_LEVELS = ((21, "critical"), (17, "error"), (13, "warning"), (9, "info"), (1, "debug"))


def _level(severity: int, default: str) -> str:
    return next((name for floor, name in _LEVELS if severity >= floor), default)


def _user(attrs: dict[str, Any]) -> dict[str, Any] | None:
    uid = attrs.get("enduser.id") or attrs.get("user.id")
    return {"id": _text(uid)} if uid else None


def _body(record: LogRecord) -> str:
    value = any_value(record.body)
    return _text(value, MAX_MESSAGE) if value is not None else ""


def map_logs(request: ExportLogsServiceRequest, project: Project) -> Mapped:
    mapped = Mapped()
    for rl in request.resource_logs:
        res = _resource(rl.resource, project)
        for sl in rl.scope_logs:
            scope = sl.scope.name
            for record in sl.log_records:
                attrs = attributes(record.attributes)
                has_exception = bool(attrs.get("exception.type") or attrs.get("exception.message"))
                if not has_exception and record.severity_number < SEVERITY_ERROR:
                    mapped.ignore("log_below_error")
                    continue
                trace_id, span_id = hex_id(record.trace_id), hex_id(record.span_id)
                nanos = record.time_unix_nano or record.observed_time_unix_nano
                message = _body(record)
                fields: dict[str, Any] = {
                    **res.fields, "level": _level(record.severity_number, "error"),
                    "logger": cut(scope, MAX_SHORT) or None, "message": message or None,
                    "trace_id": trace_id, "span_id": span_id,
                    "tags": _tags({"otel.scope": _text(scope)} if scope else {}, attrs), "user": _user(attrs),
                }
                if has_exception:
                    exc = _exception(attrs, res.language, res.root)
                    _count_stacktrace(mapped, exc)
                    fields["exceptions"] = exc.exceptions()
                fields["event_id"] = _event_id(trace_id, span_id, nanos, scope, message, attrs.get("exception.type"))
                when = _time(nanos)
                if when:
                    fields["timestamp"] = when
                _convert(fields, res, f"log record {span_id or ''}".strip(), mapped)
    return mapped
