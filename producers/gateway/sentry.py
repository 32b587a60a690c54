"""Sentry's ingestion protocol: envelopes, and Sentry event payloads → ``ErrorEvent``.

The conversion is lenient where Sentry SDKs vary (tags as a dict or as pairs,
``exception`` as a list or ``{"values": [...]}``, messages as strings,
``message`` objects or ``logentry``, numeric user ids) and shortens what only
breaks our size limits (like Sentry's own trimming), so an event from a real
SDK is never refused for cosmetic reasons. What cannot be made valid is
refused with the validation error as the reason.

Envelope format (https://develop.sentry.dev/sdk/envelopes/): a JSON header
line, then items, each a JSON item header line followed by a payload of
``length`` bytes, or up to the next newline when ``length`` is absent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from producers.capture import cut
from producers.gateway.errors import Rejected
from producers.integrations.request_info import SENSITIVE_HEADERS
from schemas.events import LEVELS
from schemas.fast import ErrorEvent, convert_event
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
    MAX_SHORT,
    MAX_TAGS,
)

_LEVEL_MAP: dict[str, str] = {"fatal": "critical", "warn": "warning", "log": "info", **{lvl: lvl for lvl in LEVELS}}
EVENT_ITEM_TYPES = frozenset({"event"})
SESSION_ITEM_TYPES = frozenset({"session", "sessions"})  # release health (producers/sessions.py)


def loads_or_reject(data: bytes, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, "invalid_json", f"{what} is not valid JSON: {exc}") from None


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """(envelope header, [(item header, payload)])."""
    header_line, _, rest = body.partition(b"\n")
    header = loads_or_reject(header_line, "envelope header") if header_line.strip() else {}
    if not isinstance(header, dict):
        raise Rejected(400, "invalid_envelope", "envelope header must be a JSON object")
    items: list[tuple[dict[str, Any], bytes]] = []
    pos = 0
    while pos < len(rest):
        end = rest.find(b"\n", pos)
        line = rest[pos:] if end < 0 else rest[pos:end]
        pos = len(rest) if end < 0 else end + 1
        if not line.strip():
            continue
        item_header = loads_or_reject(line, f"envelope item header #{len(items) + 1}")
        if not isinstance(item_header, dict) or not isinstance(item_header.get("type"), str):
            raise Rejected(400, "invalid_envelope", f"envelope item header #{len(items) + 1} needs a type")
        length = item_header.get("length")
        if length is not None:
            if not isinstance(length, int) or length < 0 or pos + length > len(rest):
                raise Rejected(400, "invalid_envelope", f"envelope item #{len(items) + 1} has a bad length")
            payload = rest[pos:pos + length]
            pos += length
            if rest[pos:pos + 1] == b"\n":
                pos += 1
        else:
            end = rest.find(b"\n", pos)
            payload = rest[pos:] if end < 0 else rest[pos:end]
            pos = len(rest) if end < 0 else end + 1
        items.append((item_header, payload))
    return header, items


# --- Sentry event → our schema -----------------------------------------------------------------
def _values(value: Any) -> list[Any]:
    """Sentry interfaces come as ``{"values": [...]}`` or as a bare list."""
    if isinstance(value, dict):
        value = value.get("values")
    return value if isinstance(value, list) else []


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if value.__class__ is not str:
        value = str(value)
    return value if len(value) <= limit else cut(value, limit)


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    """A dict, or a list of ``[key, value]`` pairs (Sentry allows both for tags and headers)."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return [(str(p[0]), p[1]) for p in value if isinstance(p, (list, tuple)) and len(p) == 2]
    return []


def _frame(f: dict[str, Any]) -> dict[str, Any]:
    lineno, colno = f.get("lineno"), f.get("colno")
    in_app = f.get("in_app")
    return {
        "filename": _str(f.get("filename"), MAX_PATH),
        "abs_path": _str(f.get("abs_path"), MAX_PATH),
        "module": _str(f.get("module") or f.get("package"), MAX_SHORT),
        "function": _str(f.get("function"), MAX_SHORT),
        "lineno": lineno if isinstance(lineno, int) and lineno >= 0 else None,
        "colno": colno if isinstance(colno, int) and colno >= 0 else None,
        "in_app": in_app if isinstance(in_app, bool) else None,
        "context_line": _str(f.get("context_line"), MAX_CONTEXT_LINE),
        # the nearest lines when there are too many; locals that break the free-form bounds are dropped (they
        # are a reading aid: better an event without them than no event)
        "pre_context": _lines(f.get("pre_context"), last=True),
        "post_context": _lines(f.get("post_context"), last=False),
        "vars": _vars(f.get("vars")),
    }


def _lines(value: Any, last: bool) -> list[str] | None:
    if not isinstance(value, list) or not value:
        return None
    kept = value[-MAX_CONTEXT_LINES:] if last else value[:MAX_CONTEXT_LINES]
    return [_str(line, MAX_CONTEXT_LINE) or "" for line in kept]


def _vars(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not value:
        return None
    kept = {str(k)[:MAX_SHORT]: v for k, v in list(value.items())[:MAX_FRAME_VARS]}
    try:
        check_free_form(kept)
    except ValueError:
        return None
    return kept


def _exception(e: dict[str, Any]) -> dict[str, Any]:
    frames = [f for f in _values(_obj(e.get("stacktrace")).get("frames")) if isinstance(f, dict)]
    if len(frames) > MAX_FRAMES:  # keep where it started and where it raised
        frames = frames[: MAX_FRAMES // 2] + frames[-(MAX_FRAMES // 2):]
    mechanism = e.get("mechanism") if isinstance(e.get("mechanism"), dict) else None
    return {
        "type": _str(e.get("type"), MAX_SHORT) or "Error",
        "value": _str(e.get("value"), MAX_MESSAGE) or "",
        "module": _str(e.get("module"), MAX_SHORT),
        "mechanism": {
            "type": _str(mechanism.get("type"), MAX_SHORT) or "generic",
            "handled": mechanism.get("handled") if isinstance(mechanism.get("handled"), bool) else None,
        } if mechanism else None,
        "stacktrace": [_frame(f) for f in frames],
    }


def _message(get: Callable[[str], Any]) -> str | None:
    for key in ("logentry", "message"):
        value = get(key)
        if isinstance(value, str) and value:
            return cut(value, MAX_MESSAGE)
        if isinstance(value, dict):
            text = value.get("formatted") or value.get("message")
            params = value.get("params")
            if isinstance(text, str) and not value.get("formatted") and params:
                try:
                    text = text % (tuple(params) if isinstance(params, list) else params)
                except (TypeError, ValueError, KeyError):
                    pass
            if isinstance(text, str) and text:
                return cut(text, MAX_MESSAGE)
    return None


def _breadcrumb(b: dict[str, Any]) -> dict[str, Any]:
    data = _obj(b.get("data"))
    return {
        "timestamp": b.get("timestamp"),
        "type": _str(b.get("type"), MAX_SHORT),
        "category": _str(b.get("category"), MAX_SHORT),
        "message": _str(b.get("message"), MAX_MESSAGE),
        "level": _str(b.get("level"), 16),
        "data": dict(list(data.items())[:50]),
    }


def _user(u: Any, client_ip: str | None) -> dict[str, Any] | None:
    if not isinstance(u, dict):
        return None
    ip = u.get("ip_address")
    if ip == "{{auto}}":  # Sentry's placeholder: the address the event came from
        ip = client_ip
    user = {
        "id": _str(u.get("id"), MAX_SHORT),
        "email": _str(u.get("email"), MAX_SHORT),
        "username": _str(u.get("username"), MAX_SHORT),
        "ip_address": _str(ip, 64),
    }
    return user if any(user.values()) else None


def _request(r: Any) -> dict[str, Any] | None:
    if not isinstance(r, dict):
        return None
    query = r.get("query_string")
    if not isinstance(query, str):
        query = "&".join(f"{k}={v}" for k, v in _pairs(query)) if query else None
    headers = {
        str(k)[:MAX_SHORT]: "[Filtered]" if str(k).lower() in SENSITIVE_HEADERS else (_str(v, MAX_SHORT) or "")
        for k, v in _pairs(r.get("headers"))[:100]
    }
    return {"method": _str(r.get("method"), 16), "url": _str(r.get("url"), MAX_PATH),
            "query_string": _str(query, MAX_PATH), "headers": headers}


def _request_id(request: dict[str, Any] | None) -> str | None:
    """The request's ``X-Request-Id`` (or ``X-Correlation-Id``) header: what ties the event to the logs."""
    if not request:
        return None
    for name, value in request["headers"].items():
        if name.lower() in ("x-request-id", "x-correlation-id") and value:
            return str(value)
    return None


def _hex_id(value: Any, lengths: tuple[int, ...]) -> str | None:
    if isinstance(value, str) and len(value) in lengths:
        try:
            int(value, 16)
            return value.lower()
        except ValueError:
            return None
    return None


def _synthetic_message(e: dict[str, Any]) -> bool:
    """The exception JavaScript SDKs attach to ``captureMessage`` (with ``attachStacktrace``): no type, a
    ``synthetic`` mechanism, the message as its value. It is no error: kept, it was titled "Error: <message>";
    dropped, the event is the message event it is, titled by its message as Sentry titles it."""
    mechanism = e.get("mechanism")
    return not e.get("type") and isinstance(mechanism, dict) and mechanism.get("synthetic") is True


def _event_id(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return uuid.uuid4()


def _fields(data: dict[str, Any], service: str, client_ip: str | None, *, sanitise: bool) -> dict[str, Any]:
    """Our event's fields. ``sanitise=False`` hands frames and breadcrumbs to the schema as they are (its
    validator is several times faster than reshaping them in Python); ``True`` cleans every field and is
    used only when that fast attempt did not validate."""
    exceptions = [e for e in _values(data.get("exception"))
                  if isinstance(e, dict) and not _synthetic_message(e)][-MAX_CHAIN:]
    crumbs = [b for b in _values(data.get("breadcrumbs")) if isinstance(b, dict)][-MAX_BREADCRUMBS:]
    fields = common_fields(data.get, service, client_ip)
    # Fast path: the schema parses the UUID itself; the sanitising pass replaces an invalid one.
    fields["event_id"] = (_event_id(data.get("event_id")) if sanitise or not isinstance(data.get("event_id"), str)
                          else data["event_id"])
    fields["exceptions"] = [_exception(e) for e in exceptions] if sanitise else [
        {**e, "value": e.get("value") or "", "stacktrace": _obj(e.get("stacktrace")).get("frames") or []}
        for e in exceptions
    ]
    fields["breadcrumbs"] = [_breadcrumb(b) for b in crumbs] if sanitise else crumbs
    return fields


def common_fields(get: Callable[[str], Any], service: str, client_ip: str | None) -> dict[str, Any]:
    """The fields of our event both conversions build alike (all but event_id, exceptions and breadcrumbs).

    ``get`` reads a top-level attribute of the Sentry event (``dict.get``, or an attribute of a decoded struct).
    """
    tags = {str(k)[:MAX_SHORT]: _str(v, MAX_SHORT) or "" for k, v in _pairs(get("tags"))[:MAX_TAGS] if k}
    contexts = _obj(get("contexts"))
    trace = _obj(contexts.get("trace"))
    context: dict[str, Any] = {k: v for k, v in contexts.items() if k != "trace"}
    extra = get("extra")
    if isinstance(extra, dict) and extra:
        context["extra"] = extra
    recovery = sentry_recovery(context, tags)
    sdk = _obj(get("sdk"))
    level = get("level")
    request = _request(get("request"))
    fields: dict[str, Any] = {
        "service": service,
        "environment": _str(get("environment"), MAX_SHORT) or "production",
        "release": _str(get("release"), MAX_SHORT),
        "level": _LEVEL_MAP.get(level.lower(), "error") if isinstance(level, str) else "error",
        "platform": _str(get("platform"), 32) or "other",
        "server_name": _str(get("server_name"), MAX_SHORT),
        "logger": _str(get("logger"), MAX_SHORT),
        "message": _message(get),
        "user": _user(get("user"), client_ip),
        "request": request,
        "tags": tags,
        "context": dict(list(context.items())[:MAX_TAGS]),
        "trace_id": _hex_id(trace.get("trace_id"), (16, 32)),
        "span_id": _hex_id(trace.get("span_id"), (8, 16)),
        "parent_span_id": _hex_id(trace.get("parent_span_id"), (8, 16)),
        "correlation_id": tags.get("correlation_id") or tags.get("request_id") or _request_id(request),
        "sdk": _str(f"{sdk.get('name')}/{sdk.get('version')}", MAX_SHORT) if sdk.get("name") else None,
    }
    timestamp = get("timestamp")
    if timestamp is not None:
        fields["timestamp"] = timestamp
    if recovery is not None:
        fields["recovery"] = recovery
    return fields


RECOVERY_OUTCOMES = {"recovered": True, "failed": False}


def sentry_recovery(context: dict[str, Any], tags: dict[str, str]) -> Any:
    """The recovery a Sentry SDK can express (docs/ingestion.md#recovery): a ``recovery`` context, as our
    contract's ``recovery`` object, or else the tags ``recovery.outcome`` (``recovered`` / ``failed``),
    ``recovery.method``, ``recovery.attempts`` and ``recovery.duration_ms``. The context is moved, not
    copied; what the schema refuses in it refuses the event with the field's name."""
    if "recovery" in context:
        return context.pop("recovery")
    outcome = tags.get("recovery.outcome")
    if outcome is None:
        return None
    recovery: dict[str, Any] = {"attempted": True, "successful": RECOVERY_OUTCOMES.get(outcome.lower(), outcome)}
    for name in ("method", "attempts", "duration_ms"):
        value = tags.get(f"recovery.{name}")
        if value is not None:
            recovery[name] = value  # the schema converts "3" to 3, and refuses "three" by name
    return recovery


def convert_sentry_event(data: Any, *, service: str, client_ip: str | None = None) -> ErrorEvent:
    if not isinstance(data, dict):
        raise Rejected(400, "invalid_event", "a Sentry event must be a JSON object")
    try:
        event = convert_event(_fields(data, service, client_ip, sanitise=False))
    except ValueError:  # pydantic's ValidationError included
        try:
            event = convert_event(_fields(data, service, client_ip, sanitise=True))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise Rejected(400, "invalid_event", f"event field {loc}: {first['msg']}") from None
        except ValueError as exc:
            raise Rejected(400, "invalid_event", f"event: {exc}") from None
    return with_sentry_fingerprint(event, data.get("fingerprint"))


def with_sentry_fingerprint(event: ErrorEvent, parts: Any) -> ErrorEvent:
    """Carry the SDK's ``fingerprint`` (if any) on the event as sent.

    ``{{ default }}`` in it is resolved by the worker's grouping (``stream_processors.fingerprint``),
    the one place that parses fingerprint rules.
    """
    fingerprint = [str(p)[:MAX_SHORT] for p in parts or [] if p not in (None, "")] if isinstance(parts, list) else []
    if fingerprint:
        event.fingerprint = fingerprint[:MAX_FINGERPRINT_PARTS]
    return event
