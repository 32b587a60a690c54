"""The gateway's fast Sentry conversion is an optimisation only: same event, or same refusal, as the lenient one.

``convert_sentry_payload`` decodes a Sentry event straight into typed structs;
``convert_sentry_event`` parses it into dicts and repairs what it can. These
tests feed both the events real ``sentry-sdk`` builds, hand-written events in
the forms other SDKs use, and every field of them set to values of the wrong
kind or size, and require identical results.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from producers.gateway.errors import Rejected
from producers.gateway.sentry import convert_sentry_event
from producers.gateway.sentry_typed import convert_sentry_payload, typed_event
from schemas.fast import encode
from schemas.limits import MAX_BREADCRUMBS, MAX_CHAIN
from stream_processors.fingerprint import digest, group_event
from tests.support.mutations import mutations

RECORDED = Path(__file__).parents[1] / "data" / "sentry_sdk"  # scripts/record_sentry_payloads.py writes them
SDK_SOURCES = ["installed", "python-2.76.0", "python-3.0.0"]


@functools.cache
def sdk_events(source: str = "installed") -> list[bytes]:
    """Event payloads exactly as an unmodified sentry-sdk serialises them.

    ``installed``: built now by the SDK in this environment (in another process);
    otherwise recorded from that release, so both majors stay tested whichever is installed.
    """
    if source != "installed":
        return (RECORDED / f"{source}.jsonl").read_bytes().splitlines()
    out = subprocess.run([sys.executable, "-m", "tests.support.apps.sentry_payloads"], capture_output=True, check=True,
                         timeout=120, cwd=Path(__file__).parents[2]).stdout
    return out.splitlines()


def other_sdk_events() -> list[bytes]:
    """Forms other SDKs send: bare lists, tag pairs, float timestamps, request data, message objects."""
    base: dict[str, Any] = {
        "event_id": "9f2c3ad4a3d04a1c8d1b4f5a6e7d8c9b", "platform": "javascript", "timestamp": 1763900000.25,
        "exception": [{"type": "TypeError", "value": "x is undefined", "mechanism": {"type": "onerror",
                                                                                     "handled": False},
                       "stacktrace": {"frames": [{"filename": "app.js", "function": "render", "lineno": 10,
                                                  "colno": 7, "in_app": True, "pre_context": ["a", "b"]}]}}],
        "tags": [["browser", "Firefox"], ["correlation_id", "c-1"]],
        "breadcrumbs": [{"timestamp": 1763899999.5, "category": "ui.click", "message": "button#buy"}],
        "request": {"method": "POST", "url": "https://shop.example/cart", "query_string": [["a", "1"], ["b", "2"]],
                    "headers": {"Cookie": "secret", "User-Agent": "Firefox"}},
        "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16}, "browser": {"name": "Firefox"}},
        "sdk": {"name": "sentry.javascript.browser", "version": "9.1.0"},
    }
    variants = [
        base,
        {**base, "breadcrumbs": {"values": [{"timestamp": "2026-11-23T12:00:00Z", "message": "ok"}]}},
        {**base, "exception": {"values": base["exception"]}, "level": "warn", "tags": {"browser": "Chrome"}},
        {"message": {"formatted": "cache miss for key 7"}, "level": "info", "platform": "go"},
        {"logentry": {"message": "%s of %s", "params": [1, 2]}},
        {},
        {"exception": {"values": [{"type": "E", "stacktrace": {"frames": [{"lineno": i} for i in range(300)]}}]}},
        # Longer than errstream keeps: the newest exceptions of a chain and the newest breadcrumbs stay.
        {"exception": {"values": [{"type": f"E{i}", "value": str(i)} for i in range(MAX_CHAIN + 3)]},
         "breadcrumbs": [{"message": f"step {i}", "timestamp": "2026-11-23T12:00:00Z"}
                         for i in range(MAX_BREADCRUMBS + 5)]},
    ]
    return [json.dumps(v).encode() for v in variants]


BAD_VALUES: list[Any] = [None, 0, -1, 1.5, "", "x" * 3000, [], {}, True, "12", "2026-11-23", "not-a-uuid", [1],
                         {"k": 1}, {"values": 3}, [[1, 2]]]


def _outcome(convert: Any, payload: bytes) -> Any:
    try:
        event = convert(payload)
    except Rejected as r:
        return ("rejected", r.status, r.reason, r.detail)
    doc = orjson.loads(encode(event))
    source = orjson.loads(payload) if payload.strip()[:1] == b"{" else {}
    if not isinstance(source.get("event_id"), str) or source["event_id"].replace("-", "") != doc["event_id"]:
        doc.pop("event_id")  # a fresh id either way
    if "timestamp" not in source or source["timestamp"] is None:
        doc.pop("timestamp")  # "now" either way
    return doc


def fast(payload: bytes) -> Any:
    return convert_sentry_payload(payload, service="shop", client_ip="10.0.0.9")


def lenient(payload: bytes) -> Any:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, "invalid_json", f"event item is not valid JSON: {exc}") from None
    return convert_sentry_event(data, service="shop", client_ip="10.0.0.9")


@pytest.mark.parametrize("source", SDK_SOURCES)
def test_real_sdk_events_convert_identically_and_keep_what_users_see(source: str) -> None:
    payloads = sdk_events(source)
    assert len(payloads) == 8
    for payload in payloads:
        assert typed_event(payload, service="shop") is not None  # the fast path, not the fallback
        assert _outcome(fast, payload) == _outcome(lenient, payload)
    chained = fast(payloads[1])
    assert [e.type for e in chained.exceptions] == ["OrderRejected", "RuntimeError"]
    assert chained.exceptions[-1].stacktrace[-1].function == "pay"
    assert chained.exceptions[0].stacktrace[-1].context_line is not None
    assert chained.user is not None and chained.user.id == "42" and chained.user.email == "ada@example.com"
    assert chained.tags["region"] == "eu-west-1" and chained.correlation_id == "r-9"
    assert [b.message for b in chained.breadcrumbs] == ["GET /cart", "cart loaded"]
    assert chained.context["order"] == {"id": 1, "items": [1, 2]} and chained.release == "shop@2.0.1"
    custom = fast(payloads[2])
    assert custom.fingerprint == ["{{ default }}", "eu"]  # carried as sent; the worker's grouping resolves it
    plain = msgspec.structs.replace(custom, fingerprint=None)
    assert group_event(custom).fingerprint == digest(["custom", group_event(plain).fingerprint, "eu"])
    assert fast(payloads[4]).fingerprint == ["checkout"]
    assert fast(payloads[6]).message == "disk almost full" and fast(payloads[6]).level == "warning"
    assert fast(payloads[7]).message == "user ada locked out" and fast(payloads[7]).logger == "shop.orders"


@pytest.mark.parametrize("index", range(8))
def test_other_sdk_forms_convert_identically(index: int) -> None:
    payload = other_sdk_events()[index]
    assert _outcome(fast, payload) == _outcome(lenient, payload)
    # Unix-seconds timestamps (JavaScript SDKs) and 300 frames need the lenient path; the rest take the fast one.
    assert (typed_event(payload, service="shop") is None) == (index in (0, 1, 2, 6))


def _mutation_sources() -> list[dict[str, Any]]:
    return [orjson.loads(p) for p in sdk_events()[:2] + sdk_events("python-2.76.0")[1:2] + other_sdk_events()[:3]]


# one case per source event (about 800 to 4,700 mutations each), so the suite's processes share them
@pytest.mark.parametrize("index", range(6))
def test_every_mutation_gives_the_same_event_or_the_same_refusal(index: int) -> None:
    source = _mutation_sources()[index]
    checked = 0
    for mutated in mutations(source, BAD_VALUES):
        payload = json.dumps(mutated).encode()
        assert _outcome(fast, payload) == _outcome(lenient, payload), payload[:300]
        checked += 1
    assert checked > 800


def test_junk_gives_the_same_refusal() -> None:
    for junk in (b"", b"[]", b"nul", b'"text"', b"{", b'{"exception": 5}'):
        assert _outcome(fast, junk) == _outcome(lenient, junk), junk


def test_a_javascript_capture_message_is_titled_by_its_message() -> None:
    """Before: the stack a JavaScript SDK attaches to ``captureMessage`` (no type, a synthetic mechanism) made
    the title "Error: <message>"; Sentry titles it by the message."""
    payload = orjson.dumps({
        "event_id": uuid.uuid4().hex, "level": "info", "platform": "node", "timestamp": 1763900000.25,
        "message": "quota nearly used", "sdk": {"name": "sentry.javascript.node", "version": "8.40.0"},
        "exception": {"values": [{"value": "quota nearly used", "mechanism": {
            "type": "generic", "handled": True, "synthetic": True}, "stacktrace": {"frames": [
                {"filename": "/app/quota.js", "function": "check", "lineno": 12, "in_app": True}]}}]},
    })
    event = fast(payload)
    assert _outcome(fast, payload) == _outcome(lenient, payload)
    assert event.exceptions == [] and event.message == "quota nearly used"
    assert group_event(event).title == "quota nearly used"
    thrown = orjson.loads(payload)  # a real error without a type keeps its exception, as before
    thrown["exception"]["values"][0]["mechanism"] = {"type": "onunhandledrejection", "handled": False}
    assert [e.type for e in fast(orjson.dumps(thrown)).exceptions] == ["Error"]
