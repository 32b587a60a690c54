"""What the SDK attaches to an event besides the exception: tags, user, request, trace ids, breadcrumbs.

The scope lives in a ``ContextVar`` so each request, task or thread sees its
own, and it is immutable: setters replace it with a changed copy. That makes
the snapshot taken on the application's thread at capture time free (a
reference), which is most of what keeps ``capture_exception`` cheap.

Trace and span ids come from the scope when a middleware or the app set them,
else from OpenTelemetry's current span when ``opentelemetry-api`` is installed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

_otel_trace: Any
try:  # optional: pick up the active OpenTelemetry span
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None

Breadcrumbs = deque[dict[str, Any]]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Scope:
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    user: Mapping[str, Any] | None = None
    request: Mapping[str, Any] | None = None
    contexts: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    correlation_id: str | None = None
    # None: the client's process-wide ring buffer; a middleware gives each request its own.
    breadcrumbs: Breadcrumbs | None = field(default=None, compare=False)


_scope: ContextVar[Scope] = ContextVar("errstream_scope", default=Scope())  # noqa: B039 - Scope is immutable


def current_scope() -> Scope:
    return _scope.get()


def _update(**changes: Any) -> None:
    _scope.set(replace(_scope.get(), **changes))


def set_tag(key: str, value: Any) -> None:
    """A tag for events captured later in this context (request, task, thread)."""
    _update(tags=MappingProxyType({**_scope.get().tags, str(key): str(value)}))


def set_user(user: Mapping[str, Any] | None) -> None:
    _update(user=MappingProxyType(dict(user)) if user else None)


def set_context(name: str, value: Mapping[str, Any]) -> None:
    _update(contexts=MappingProxyType({**_scope.get().contexts, name: dict(value)}))


def set_trace(trace_id: str | None, span_id: str | None = None, parent_span_id: str | None = None) -> None:
    _update(trace_id=trace_id, span_id=span_id, parent_span_id=parent_span_id)


def set_correlation_id(correlation_id: str | None) -> None:
    _update(correlation_id=correlation_id)


@contextmanager
def isolated_scope(max_breadcrumbs: int = 100, **changes: Any) -> Iterator[Scope]:
    """A fresh scope (and breadcrumb buffer) for one request or job, inheriting the current tags and user."""
    token = _scope.set(replace(_scope.get(), breadcrumbs=deque(maxlen=max_breadcrumbs), **changes))
    try:
        yield _scope.get()
    finally:
        _scope.reset(token)


def otel_ids() -> tuple[str | None, str | None]:
    """(trace_id, span_id) of OpenTelemetry's current span, when there is a valid one."""
    if _otel_trace is None:
        return None, None
    try:
        ctx = _otel_trace.get_current_span().get_span_context()
    except Exception:
        return None, None
    if not ctx.is_valid:
        return None, None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def breadcrumb(message: str | None, *, category: str | None = None, level: str = "info",
               type: str = "default", data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A breadcrumb in the schema's JSON shape; the timestamp is taken now (epoch seconds, UTC)."""
    crumb: dict[str, Any] = {"timestamp": time.time(), "type": type, "level": level, "message": message}
    if category:
        crumb["category"] = category
    if data:
        crumb["data"] = dict(data)
    return crumb


def parse_traceparent(value: str | None) -> tuple[str | None, str | None]:
    """W3C ``traceparent`` (``00-<trace>-<span>-<flags>``) or Sentry's ``sentry-trace`` (``<trace>-<span>[-s]``)."""
    if not value:
        return None, None
    parts = value.strip().split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        trace, span = parts[1], parts[2]
    elif len(parts) in (2, 3) and len(parts[0]) == 32 and len(parts[1]) == 16:
        trace, span = parts[0], parts[1]
    else:
        return None, None
    try:
        int(trace, 16), int(span, 16)
    except ValueError:
        return None, None
    return trace.lower(), span.lower()
