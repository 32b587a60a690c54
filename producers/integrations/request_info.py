"""Request context shared by the ASGI and WSGI middleware: what to keep from a request, and what not."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from producers.capture import cut
from producers.scope import parse_traceparent
from schemas.limits import MAX_PATH, MAX_SHORT

# Credentials never leave the process, whatever the worker's scrubbing does later.
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key",
                               "x-sentry-auth"})


def request_fields(method: str, url: str, query: str, headers: dict[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``isolated_scope``: request info, trace ids, correlation id."""
    trace_id, parent_span = parse_traceparent(headers.get("traceparent") or headers.get("sentry-trace"))
    kept = {k: ("[Filtered]" if k in SENSITIVE_HEADERS else cut(v, MAX_SHORT) or "")
            for k, v in list(headers.items())[:100]}
    return {
        "request": MappingProxyType({"method": method[:16], "url": cut(url, MAX_PATH),
                                     "query_string": cut(query, MAX_PATH) or None, "headers": kept}),
        "trace_id": trace_id,
        "parent_span_id": parent_span,
        "correlation_id": cut(headers.get("x-request-id") or headers.get("x-correlation-id"), MAX_SHORT),
    }
