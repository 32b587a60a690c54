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
resource's go to ``context["otel_resource"]``. Scrubbing happens in the gateway's publish step, as for every
other endpoint. Event ids are derived from the record (trace, span, time, type), so an exporter's retry of the
same batch stores each event once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pydantic import ValidationError

from producers.gateway.otlp_wire import hex_id
from producers.gateway.projects import Project
from producers.gateway.stacktrace_text import parse_stacktrace
from producers.gateway.stacktrace_text.common import cut, split_type
from schemas.fast import ErrorEvent, convert_event
from schemas.limits import MAX_MESSAGE, MAX_SHORT, MAX_TAGS

SEVERITY_ERROR = 17  # SeverityNumber: 17-20 ERROR, 21-24 FATAL
MAX_EVENTS = 1_000  # events taken from one request (as for POST /api/v1/events); the rest are refused
MAX_VALUE_DEPTH = 4  # an array or kvlist attribute is rendered as text this deep, then "…"
PROJECT_ROOT = "errstream.project_root"  # resource attribute: the application's source root (in-app frames)
_EXCEPTION_KEYS = ("exception.type", "exception.message", "exception.stacktrace", "exception.escaped")
_PLATFORMS = {"python": "python", "java": "java", "nodejs": "node", "webjs": "javascript", "go": "go",
              "dotnet": "csharp", "ruby": "ruby", "php": "php", "rust": "native", "cpp": "native",
              "swift": "cocoa", "erlang": "elixir"}
_SPLIT_TYPES = frozenset({"python", "java"})  # their Sentry SDKs send "Error" + module, not "pkg.Error"


@dataclass
class Mapped:
    """What one request turned into: events to publish, and what was refused or left out, counted."""

    events: list[ErrorEvent] = field(default_factory=list)
    rejected: int = 0  # spans or log records refused (OTLP partial success)
    errors: list[str] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    stacktraces: Counter[tuple[str, str]] = field(default_factory=Counter)  # (language, parsed|unparsed)

    def refuse(self, what: str, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < 5:
            self.errors.append(f"{what}: {reason}"[:300])

    @property
    def error_message(self) -> str:
        return "; ".join(self.errors)


def any_value(value: AnyValue, depth: int = 0) -> Any:
    """An attribute value as plain Python, long strings cut, nesting bounded."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return cut(value.string_value, MAX_MESSAGE)
    if kind in ("bool_value", "int_value", "double_value"):
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
    return {kv.key[:MAX_SHORT]: any_value(kv.value) for kv in kvs if kv.key}


def _text(value: Any, limit: int = MAX_SHORT) -> str:
    if isinstance(value, str):
        return cut(value, limit) or ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return cut(msgspec.json.encode(value).decode(), limit) or ""


def _tags(*sources: dict[str, Any], **fixed: str | None) -> dict[str, str]:
    tags = {k: _text(v) for k, v in fixed.items() if v}
    for source in sources:
        for key, value in source.items():
            if len(tags) >= MAX_TAGS:
                return tags
            if key in tags or key.startswith("exception.") or value is None or value == "":
                continue
            tags[key] = _text(value)
    return tags


def _time(nanos: int) -> datetime | None:
    if not nanos:
        return None
    try:
        return datetime.fromtimestamp(nanos / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _event_id(*parts: object) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).digest())


@dataclass(frozen=True)
class _Resource:
    service: str
    named: bool  # service.name was given (and must be checked against the key)
    fields: dict[str, Any]  # release, environment, server_name, platform, sdk: shared, never changed
    attributes: dict[str, Any]  # → context["otel_resource"], copied per event
    language: str
    root: str | None

    def event_fields(self) -> dict[str, Any]:
        return {**self.fields, "service": self.service,
                "context": {"otel_resource": dict(self.attributes)} if self.attributes else {}}


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
    resource = {k: (v if isinstance(v, (str, int, float, bool)) else _text(v)) for k, v in
                list(attrs.items())[:MAX_TAGS]}
    fields = {
        "release": _text(attrs["service.version"]) if attrs.get("service.version") else None,
        "environment": _text(env) if env else "production",
        "server_name": _text(attrs["host.name"]) if attrs.get("host.name") else None,
        "platform": _PLATFORMS.get(language, "other"),
        "sdk": _text(f"{sdk}/{attrs.get('telemetry.sdk.version', '')}") if sdk else None,
    }
    root = attrs.get(PROJECT_ROOT)
    return _Resource(str(name) if named else default_service, named, fields, resource, language,
                     root if isinstance(root, str) and root else None)


def _chain(attrs: dict[str, Any], res: _Resource, mapped: Mapped) -> list[dict[str, Any]]:
    """The exception chain from ``exception.*`` attributes, frames parsed from the printed trace."""
    type_ = _text(attrs.get("exception.type") or "")
    message = _text(attrs.get("exception.message") or "", MAX_MESSAGE)
    text = attrs.get("exception.stacktrace")
    language = res.language or "unknown"
    mechanism = {"type": "opentelemetry",
                 "handled": (not attrs["exception.escaped"]) if isinstance(attrs.get("exception.escaped"), bool)
                 else None}
    if isinstance(text, str) and text.strip():
        chain = parse_stacktrace(text, res.language, res.root)
        mapped.stacktraces[(language if language in _PLATFORMS else "other",
                            "parsed" if chain else "unparsed")] += 1
        if chain:
            last = chain[-1]
            if not last["value"] and message:
                last["value"] = message
            last["mechanism"] = mechanism
            return chain
    name, module = split_type(type_) if res.language in _SPLIT_TYPES else (type_, None)
    return [{"type": name or "Error", "module": module, "value": message, "mechanism": mechanism,
             "stacktrace": []}]


def _convert(fields: dict[str, Any], what: str, mapped: Mapped) -> None:
    if len(mapped.events) >= MAX_EVENTS:
        mapped.refuse(what, f"more than {MAX_EVENTS} errors in one request")
        return
    try:
        mapped.events.append(convert_event(fields))
    except ValidationError as exc:
        first = exc.errors()[0]
        mapped.refuse(what, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    except (ValueError, TypeError) as exc:
        mapped.refuse(what, str(exc))


def _exception_events(span: Span) -> Iterator[tuple[int, Any]]:
    for index, event in enumerate(span.events):
        if event.name == "exception":
            yield index, event


def map_traces(request: ExportTraceServiceRequest, project: Project) -> Mapped:
    mapped = Mapped()
    for rs in request.resource_spans:
        res = _resource(rs.resource, project)
        for ss in rs.scope_spans:
            for span in ss.spans:
                found = False
                span_attrs: dict[str, Any] | None = None
                trace_id, span_id = hex_id(span.trace_id), hex_id(span.span_id)
                for index, event in _exception_events(span):
                    found = True
                    if span_attrs is None:
                        span_attrs = attributes(span.attributes)
                    attrs = attributes(event.attributes)
                    chain = _chain(attrs, res, mapped)
                    when = _time(event.time_unix_nano) or _time(span.end_time_unix_nano)
                    fields = {
                        **res.event_fields(), "level": "error", "exceptions": chain,
                        "event_id": _event_id(trace_id, span_id, event.time_unix_nano, index, chain[-1]["type"]),
                        "trace_id": trace_id, "span_id": span_id, "parent_span_id": hex_id(span.parent_span_id),
                        "tags": _tags(attrs, span_attrs, **{"otel.span_name": span.name,
                                                            "otel.scope": ss.scope.name}),
                        "user": _user(span_attrs),
                    }
                    if when:
                        fields["timestamp"] = when
                    _convert(fields, f"span {span_id or '?'}", mapped)
                if not found:
                    mapped.ignored["error_span_without_exception" if span.status.code == Status.STATUS_CODE_ERROR
                                   else "span_without_exception"] += 1
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
            for record in sl.log_records:
                attrs = attributes(record.attributes)
                has_exception = bool(attrs.get("exception.type") or attrs.get("exception.message"))
                if not has_exception and record.severity_number < SEVERITY_ERROR:
                    mapped.ignored["log_below_error"] += 1
                    continue
                trace_id, span_id = hex_id(record.trace_id), hex_id(record.span_id)
                nanos = record.time_unix_nano or record.observed_time_unix_nano
                message = _body(record)
                fields: dict[str, Any] = {
                    **res.event_fields(), "level": _level(record.severity_number, "error"),
                    "logger": cut(sl.scope.name, MAX_SHORT) or None, "message": message or None,
                    "trace_id": trace_id, "span_id": span_id,
                    "tags": _tags(attrs, **{"otel.scope": sl.scope.name}), "user": _user(attrs),
                }
                if has_exception:
                    fields["exceptions"] = _chain(attrs, res, mapped)
                fields["event_id"] = _event_id(trace_id, span_id, nanos, sl.scope.name, message,
                                               attrs.get("exception.type"))
                when = _time(nanos)
                if when:
                    fields["timestamp"] = when
                _convert(fields, f"log record {span_id or ''}".strip(), mapped)
    return mapped
