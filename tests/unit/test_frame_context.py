"""Source lines around each frame and its locals, as the Sentry SDK sends them, reach the processed event
bounded and scrubbed (issue 26): locals are where passwords and addresses sit in plain text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from producers.gateway.sentry import convert_sentry_event
from producers.gateway.sentry_typed import convert_sentry_payload
from schemas import events as models
from schemas import fast
from schemas.limits import MAX_CONTEXT_LINES, MAX_FRAME_VARS
from stream_processors.event_processor import EventProcessor
from tests.unit.test_gateway_sentry_typed import sdk_events

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _innermost(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["exception"]["values"][-1]["stacktrace"]["frames"][-1]  # type: ignore[no-any-return]


def _processed_frame(raw: bytes) -> Any:
    event = convert_sentry_payload(raw, service="shop")
    out = EventProcessor().process(fast.encode(event), received_at=NOW).processed
    assert out is not None
    return out.event.exceptions[-1].stacktrace[-1]


def test_the_sdks_context_lines_and_locals_are_kept() -> None:
    payload = orjson.loads(next(p for p in sdk_events() if b'"exception"' in p))
    sent = _innermost(payload)
    assert sent.get("pre_context") and sent.get("vars"), "the SDK sends them (include_local_variables)"
    frame = _processed_frame(orjson.dumps(payload))
    assert frame.pre_context == sent["pre_context"] and frame.post_context == sent["post_context"]
    assert frame.context_line == sent["context_line"] and set(frame.vars) == set(sent["vars"])


def test_locals_and_context_lines_are_scrubbed() -> None:
    payload = orjson.loads(next(p for p in sdk_events() if b'"exception"' in p))
    frame = _innermost(payload)
    frame["vars"] = {"db_password": "'hunter2'", "customer": "'jane@example.com'",
                     "card": "'4242 4242 4242 4242'", "nested": {"auth_token": "'abc'", "n": "3"}}
    frame["pre_context"] = ["conn = connect('postgres://admin:s3cret@db.internal/app')",
                            'log(data={"url": url, "password": "pa55word"})', "conf['db_password'] = 'letmein'"]
    out = _processed_frame(orjson.dumps(payload))
    shown = orjson.dumps(out.vars).decode() + orjson.dumps(out.pre_context).decode()
    for secret in ("hunter2", "jane@example.com", "4242 4242 4242 4242", "'abc'", "s3cret", "pa55word", "letmein"):
        assert secret not in shown, secret
    assert out.vars["nested"]["n"] == "3"  # harmless values stay readable


def test_oversized_context_is_trimmed_by_the_lenient_conversion_and_refused_by_the_contract() -> None:
    frame = {"function": "f", "lineno": 50, "context_line": "x = 1",
             "pre_context": [f"line {i}" for i in range(40)], "post_context": [f"after {i}" for i in range(40)],
             "vars": {f"v{i}": str(i) for i in range(200)}}
    event = convert_sentry_event({"exception": {"values": [{"type": "E", "stacktrace": {"frames": [frame]}}]}},
                                 service="shop")
    kept = event.exceptions[0].stacktrace[0]
    assert kept.pre_context == [f"line {i}" for i in range(30, 40)]  # the nearest lines
    assert kept.post_context == [f"after {i}" for i in range(10)] and len(kept.vars or {}) == MAX_FRAME_VARS
    with pytest.raises(ValidationError):
        models.StackFrame(pre_context=["x"] * (MAX_CONTEXT_LINES + 1))
    # locals the free-form bounds refuse (nesting too deep) are dropped by the lenient path, not the event
    deep: Any = "leaf"
    for _ in range(30):
        deep = [deep]
    event = convert_sentry_event({"exception": {"values": [{"type": "E", "stacktrace": {"frames": [
        {**frame, "vars": {"deep": deep}}]}}]}}, service="shop")
    assert event.exceptions[0].stacktrace[0].vars is None
    with pytest.raises(ValidationError):
        models.StackFrame(vars={"deep": deep})


def test_frames_without_context_carry_nothing_more() -> None:
    event = fast.decode_event(orjson.dumps({"service": "s", "exceptions": [{"type": "E", "stacktrace": [
        {"function": "f", "lineno": 1}]}]}))
    frame = event.exceptions[0].stacktrace[0]
    assert (frame.pre_context, frame.post_context, frame.vars) == (None, None, None)
