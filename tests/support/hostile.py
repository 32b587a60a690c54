"""A corpus of hostile inputs for the ``errors`` topic, as data, with what each must become.

Every case says how it must end (``expect``): ``stored`` (a valid event, stored
as sent), ``adjusted`` (stored with the documented adjustment: a timestamp
outside the accepted window is replaced by the receive time and kept as
``original_timestamp``), or ``dlq:<stage>:<reason>`` (a dead letter on
``errors.dlq``). Used by the unit property tests (``EventProcessor`` alone) and
by ``tests/e2e/test_hostile_corpus.py`` (the real worker and sink).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

VALID_EVENT: dict[str, Any] = {
    "service": "hostile",
    "level": "error",
    "message": "valid base event",
    "exceptions": [{"type": "KeyError", "value": "'user_id'", "stacktrace": [
        {"filename": "app/billing.py", "module": "app.billing", "function": "charge", "lineno": 42,
         "in_app": True}]}],
    "tags": {"region": "eu"},
    "context": {"order": {"id": 7, "items": [1, 2, 3]}},
}

INVALID_JSON = "dlq:validate:invalid_json"
INVALID_EVENT = "dlq:validate:invalid_event"


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    expect: str  # "stored", "adjusted" or "dlq:<stage>:<reason>"
    event_id: str | None = None  # for stored and adjusted cases: the id to find in error_events


def _nested(depth: int, leaf: Any = "leaf") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def _event(name: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    """A valid event (its own id, the case's name as a tag) with ``fields`` on top."""
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"errstream-hostile/{name}"))
    return event_id, {**VALID_EVENT, "event_id": event_id, "tags": {"case": name}, **fields}


def hostile_corpus(now: datetime) -> list[Case]:
    """The cases; ``now`` is about when the worker will receive them (timestamps inside the window use it)."""
    ts = now.isoformat()
    cases: list[Case] = []

    def dumped(name: str, expect: str, **fields: Any) -> None:
        """The standard library writes what orjson refuses: NaN, Infinity, integers beyond 64 bits."""
        event_id, event = _event(name, **{"timestamp": ts, **fields})
        cases.append(Case(name, json.dumps(event).encode(), expect, event_id if expect[0] != "d" else None))

    def raw(name: str, data: bytes, expect: str) -> None:
        cases.append(Case(name, data, expect))

    base = json.dumps(_event("truncated", timestamp=ts)[1]).encode()
    # broken and truncated JSON, and JSON that is not an object
    raw("empty", b"", INVALID_JSON)
    raw("not-json", b"this is not json", INVALID_JSON)
    raw("unquoted-keys", b"{service: billing}", INVALID_JSON)
    raw("trailing-comma", b'{"service": "billing",}', INVALID_JSON)
    for cut in (1, len(base) // 3, len(base) // 2, len(base) - 1):
        raw(f"truncated-at-{cut}", base[:cut], INVALID_JSON)
    raw("json-null", b"null", INVALID_EVENT)
    raw("json-list", b'["a list", "not an object"]', INVALID_EVENT)
    raw("json-number", b"42", INVALID_EVENT)
    raw("json-string", b'"billing"', INVALID_EVENT)
    # bytes that are not UTF-8, lone surrogates, NUL
    raw("invalid-utf8", b'{"service": "bil\xffling"}', INVALID_JSON)
    raw("overlong-utf8", b'{"service": "billing", "message": "\xc0\xaf"}', INVALID_JSON)
    raw("binary", b"\xff\xfe\x00\x01binary\x00", INVALID_JSON)
    raw("surrogate-as-utf8-bytes", b'{"service": "billing", "message": "\xed\xa0\x80"}', INVALID_JSON)
    raw("lone-surrogate-escape", b'{"service": "billing", "message": "x\\ud800y"}', INVALID_JSON)
    raw("lone-low-surrogate-key", b'{"service": "billing", "context": {"\\udc00": 1}}', INVALID_JSON)
    raw("raw-nul-in-string", b'{"service": "billing", "message": "a\x00b"}', INVALID_JSON)
    dumped("escaped-nul-in-message", "stored", message="before\u0000after")
    dumped("escaped-nul-in-tag", "stored", tags={"case": "escaped-nul-in-tag", "nul": "a\u0000b"})
    dumped("nul-in-service", INVALID_EVENT, service="bill\u0000ing")
    # wrong types and missing fields
    raw("empty-object", b"{}", INVALID_EVENT)
    raw("no-service", b'{"message": "who am i"}', INVALID_EVENT)
    dumped("service-number", INVALID_EVENT, service=42)
    dumped("exceptions-string", INVALID_EVENT, exceptions="KeyError")
    dumped("tags-list", INVALID_EVENT, tags=["a", "b"])
    dumped("level-number", INVALID_EVENT, level=5)
    dumped("level-unknown", INVALID_EVENT, level="apocalyptic")
    dumped("timestamp-bool", INVALID_EVENT, timestamp=True)
    dumped("user-string", INVALID_EVENT, user="u-1")
    dumped("frame-lineno-string-word", INVALID_EVENT, exceptions=[{"type": "E", "stacktrace": [{"lineno": "x"}]}])
    dumped("event-id-not-uuid", INVALID_EVENT, event_id="not-a-uuid")
    # huge messages, stacks and contexts
    raw("over-one-megabyte", json.dumps({"service": "billing", "message": "x" * 1_100_000}).encode(),
        "dlq:decode:too_large")
    dumped("message-too-long", INVALID_EVENT, message="m" * 9_000)
    frame = {"filename": "app/x.py", "module": "app.x", "function": "f", "lineno": 1, "in_app": True,
             "context_line": "y" * 1_000}
    dumped("stack-250-frames", "stored", exceptions=[{"type": "RecursionError", "stacktrace": [frame] * 250}])
    dumped("stack-251-frames", INVALID_EVENT, exceptions=[{"type": "RecursionError", "stacktrace": [frame] * 251}])
    dumped("context-50-big-values", "stored", context={f"k{i}": "v" * 10_000 for i in range(50)})
    dumped("context-51-keys", INVALID_EVENT, context={f"k{i}": i for i in range(51)})
    dumped("context-10001-values", INVALID_EVENT, context={"many": list(range(10_001))})
    # deep nesting
    dumped("context-depth-20", "stored", context={"deep": _nested(19)})
    dumped("context-depth-21", INVALID_EVENT, context={"deep": _nested(20)})
    dumped("context-depth-300", INVALID_EVENT, context={"deep": _nested(300)})
    nested = b"[" * 5_000 + b"]" * 5_000
    raw("context-depth-5000", b'{"service": "billing", "context": {"deep": ' + nested + b"}}", INVALID_EVENT)
    raw("document-depth-5000", nested, INVALID_EVENT)
    raw("breadcrumb-depth-5000", b'{"service": "billing", "breadcrumbs": [{"data": {"d": ' + nested + b"}}]}",
        INVALID_EVENT)
    # extreme numbers
    dumped("int-400-digits", INVALID_EVENT, context={"n": int("9" * 400)})
    dumped("int-2-pow-70", INVALID_EVENT, context={"n": 2**70})
    dumped("int-below-int64", INVALID_EVENT, context={"n": -(2**63) - 1})
    dumped("int-uint64-max", "stored", context={"n": 2**64 - 1, "m": -(2**63)})
    dumped("lineno-2-pow-70", INVALID_EVENT, exceptions=[{"type": "E", "stacktrace": [{"lineno": 2**70}]}])
    dumped("lineno-2-pow-32", INVALID_EVENT, exceptions=[{"type": "E", "stacktrace": [{"lineno": 2**32}]}])
    dumped("nan", INVALID_EVENT, context={"n": float("nan")})
    dumped("infinity", INVALID_EVENT, context={"n": [1.5, float("inf")]})
    dumped("minus-infinity-breadcrumb", INVALID_EVENT, breadcrumbs=[{"data": {"n": float("-inf")}}])
    raw("float-1e400", b'{"service": "billing", "context": {"n": 1e400}}', INVALID_EVENT)
    dumped("float-tiny", "stored", context={"n": 5e-324, "m": 1.7976931348623157e308})
    # recovery and resource snapshots at and beyond their bounds
    dumped("recovery-at-the-bounds", "stored", recovery={"successful": True, "method": "circuit_breaker",
                                                        "attempts": 1_000_000, "duration_ms": 2**32 - 1})
    dumped("recovery-not-an-object", INVALID_EVENT, recovery="recovered")
    dumped("recovery-successful-string", INVALID_EVENT, recovery={"successful": "maybe"})
    dumped("recovery-without-attempt", INVALID_EVENT, recovery={"attempted": False, "successful": True})
    dumped("recovery-duration-2-pow-32", INVALID_EVENT, recovery={"duration_ms": 2**32})
    dumped("recovery-attempts-2-pow-70", INVALID_EVENT, recovery={"attempts": 2**70})
    dumped("recovery-method-shouting", INVALID_EVENT, recovery={"method": "RETRY; DROP TABLE"})
    dumped("resources-at-the-bounds", "stored", resources={"cpu_percent": 100_000.0, "rss_bytes": 2**63 - 1,
                                                          "threads": 0, "load_1m": 0.0})
    dumped("resources-negative", INVALID_EVENT, resources={"rss_bytes": -1})
    dumped("resources-2-pow-63", INVALID_EVENT, resources={"open_fds": 2**63})
    dumped("resources-nan-cpu", INVALID_EVENT, resources={"cpu_percent": float("nan")})
    # extreme dates
    dumped("year-1", "adjusted", timestamp="0001-01-01T00:00:00Z")
    dumped("year-9999", "adjusted", timestamp="9999-12-31T23:59:59Z")
    dumped("before-1970", "adjusted", timestamp="1969-12-31T23:59:59Z")
    dumped("unix-zero", "adjusted", timestamp=0)
    dumped("after-datetime-range", "adjusted", timestamp="2106-02-07T06:28:16Z")
    dumped("year-0", INVALID_EVENT, timestamp="0000-01-01T00:00:00Z")
    dumped("year-10000", INVALID_EVENT, timestamp="10000-01-01T00:00:00Z")
    dumped("breadcrumb-year-1", "stored", breadcrumbs=[{"timestamp": "0001-01-01T00:00:00Z", "message": "old"}])
    # duplicate keys: the last one wins (as in JavaScript's JSON.parse, msgspec and pydantic)
    event_id, event = _event("duplicate-keys", timestamp=ts)
    body = json.dumps(event)[1:]
    cases.append(Case("duplicate-keys", f'{{"service": "first", "level": "debug", {body}'.encode(), "stored",
                      event_id))
    return cases
