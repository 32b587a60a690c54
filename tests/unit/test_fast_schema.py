"""The worker's msgspec mirror (``schemas.fast``) agrees with the pydantic contract.

The worker decodes events with the mirror and asks pydantic only about what the
mirror refused. So the mirror must never accept an event pydantic rejects, and
what it accepts must come out exactly as pydantic would have it. Each rule the
worker relies on is checked here against pydantic itself, on real events and on
systematic mutations of them, not against hand-written expectations.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest
from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel, ValidationError

from producers.synthetic import realistic_events, synthetic_event
from schemas import events as models
from schemas import fast
from schemas.processed import ProcessedEvent as ProcessedModel
from stream_processors.event_processor import EventProcessor
from tests.support.mutations import mutations

PAIRS = [
    (models.StackFrame, fast.StackFrame), (models.Mechanism, fast.Mechanism),
    (models.ExceptionInfo, fast.ExceptionInfo), (models.User, fast.User),
    (models.RequestInfo, fast.RequestInfo), (models.Breadcrumb, fast.Breadcrumb),
    (models.Recovery, fast.Recovery), (models.Resources, fast.Resources), (models.ErrorEvent, fast.ErrorEvent),
]


def _pydantic_constraints(field: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta in field.metadata:
        if isinstance(meta, MaxLen):
            out["max_length"] = meta.max_length
        elif isinstance(meta, MinLen):
            out["min_length"] = meta.min_length
        elif isinstance(meta, Ge):
            out["ge"] = meta.ge
        elif isinstance(meta, Le):
            out["le"] = meta.le
        elif getattr(meta, "pattern", None):
            out["pattern"] = meta.pattern
    return out


def _msgspec_constraints(t: Any) -> dict[str, Any]:
    if isinstance(t, msgspec.inspect.UnionType):  # X | None: the constraints are on X
        t = next(x for x in t.types if not isinstance(x, msgspec.inspect.NoneType))
    out = {k: getattr(t, k, None) for k in ("max_length", "min_length", "ge", "le", "pattern")}
    if out["pattern"]:
        out["pattern"] = out["pattern"].removesuffix(r"\Z") + "$"  # the mirror anchors with \Z (module docstring)
    return {k: v for k, v in out.items() if v is not None}


@pytest.mark.parametrize(("model", "mirror"), PAIRS, ids=[m.__name__ for m, _ in PAIRS])
def test_mirror_has_the_same_fields_defaults_and_constraints(model: type[BaseModel], mirror: type) -> None:
    info = msgspec.inspect.type_info(mirror)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {f.name: f for f in info.fields}
    assert list(fields) == list(model.model_fields)
    for name, mf in model.model_fields.items():
        f = fields[name]
        assert f.required == mf.is_required(), name
        if mf.default_factory is not None:
            assert type(f.default_factory()) is type(mf.default_factory()), name  # type: ignore[call-arg]
        elif not mf.is_required():
            assert f.default == mf.default, name
        if name == "level":
            continue  # a str checked in __post_init__, after the aliases (warn → warning) pydantic also applies
        assert _msgspec_constraints(f.type) == _pydantic_constraints(mf), name


def _valid_events() -> list[dict[str, Any]]:
    rng = random.Random(3)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    events = [orjson.loads(raw) for raw in realistic_events(30)]
    events += [orjson.loads(synthetic_event(rng, s, timestamp=now).model_dump_json())
               for s in ("billing", "checkout", "auth") for _ in range(5)]
    events.append({"service": "minimal"})
    events.append({"service": "x", "level": "WARN", "timestamp": "2026-11-23T12:00:00",
                   "breadcrumbs": [{"timestamp": "2026-11-23T14:00:00+02:00", "message": "hi"}],
                   "trace_id": "a" * 32, "span_id": "b" * 16, "fingerprint": ["{{ default }}", "eu"],
                   "unknown_field": {"ignored": True}})
    return events


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _mutations(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every field of the event, and of its nested objects, set to values of the wrong kind or size."""
    bad_values: list[Any] = [None, 0, -1, 1.5, "", "x" * 2000, "ab\n", [], {}, True, "12", 2**70,
                             "2026-11-23", "not-a-uuid", [1], {"k": 1}, {"": "v"}, ["x"] * 300,
                             # the storable bounds (schemas/limits.py): nesting, integers, non-finite floats
                             {"deep": _nested(25)}, {"ok": _nested(10)}, {"n": float("nan")},
                             {"n": float("inf")}, {"n": 10**400}, {"n": 2**64}, {"n": 2**64 - 1},
                             {"n": -(2**63) - 1}, 2**32, 2**32 - 1, {"many": list(range(10_001))}]
    yield from mutations(event, bad_values)
    for name in models.ErrorEvent.model_fields:  # fields the event did not have, added with odd values
        if name not in event:
            for value in bad_values:
                yield {**event, name: value}


def _pydantic(raw: bytes) -> models.ErrorEvent | None:
    try:
        return models.ErrorEvent.model_validate_json(raw)
    except ValidationError:
        return None


# one case per event (about 560 mutations each), so the suite's processes share the twelve
@pytest.mark.parametrize("index", range(12))
def test_mirror_never_accepts_what_pydantic_rejects_and_agrees_on_what_both_accept(index: int) -> None:
    checked = lax = 0
    for mutated in _mutations(_valid_events()[index]):
        raw = json.dumps(mutated).encode()  # the standard library: orjson refuses 2**70
        expected = _pydantic(raw)
        try:
            decoded = fast.decode_event(raw)
        except msgspec.DecodeError:  # ValidationError is a subclass; NaN literals are malformed JSON to msgspec
            lax += expected is not None  # pydantic's lax forms: the worker's fallback handles them
            continue
        checked += 1
        assert expected is not None, f"mirror accepted what pydantic rejects: {raw[:300]!r}"
        assert models.ErrorEvent.model_validate_json(fast.encode(decoded)) == expected
    assert checked > 400 and lax > 0  # both branches were really exercised


def test_valid_events_decode_to_what_pydantic_produces() -> None:
    for event in _valid_events():
        raw = orjson.dumps(event)
        decoded = fast.decode_event(raw)
        expected = models.ErrorEvent.model_validate_json(raw)
        ours, theirs = orjson.loads(fast.encode(decoded)), orjson.loads(expected.model_dump_json())
        for generated in ("event_id", "timestamp"):  # absent: both draw a fresh default
            if generated not in event:
                assert type(ours.pop(generated)) is type(theirs.pop(generated))
        assert ours == theirs


def test_worker_output_parses_as_the_processed_event_contract() -> None:
    processor = EventProcessor()
    for event in _valid_events():
        out = processor.process(orjson.dumps(event), received_at=datetime(2026, 11, 23, tzinfo=UTC)).processed
        assert out is not None
        model = ProcessedModel.model_validate_json(fast.encode(out))
        assert model.fingerprint == out.fingerprint and model.event.event_id == out.event.event_id
        assert model.received_at == datetime(2026, 11, 23, tzinfo=UTC)


def test_worker_accepts_pydantics_lax_forms_and_rejects_with_pydantics_reasons() -> None:
    processor = EventProcessor()
    lax = {"service": "billing", "timestamp": 1_795_000_000, "exceptions": [
        {"type": "KeyError", "stacktrace": [{"function": "f", "lineno": "12", "in_app": "true"}]}]}
    out = processor.process(orjson.dumps(lax)).processed
    assert out is not None  # numbers as strings, a unix timestamp: pydantic converts, so the worker accepts
    assert out.event.exceptions[0].stacktrace[0].lineno == 12 and out.event.exceptions[0].stacktrace[0].in_app
    assert out.event.timestamp == datetime.fromtimestamp(1_795_000_000, UTC)
    bad = processor.process(orjson.dumps({"service": "billing", "trace_id": "abc\n", "level": "loud"})).dead_letter
    assert bad is not None and bad.reason == "invalid_event"
    assert "trace_id" in bad.detail and "level" in bad.detail  # pydantic's precise list, not msgspec's first error


def test_naive_and_offset_timestamps_become_utc_like_pydantic() -> None:
    raw = orjson.dumps({"service": "s", "timestamp": "2026-11-23T14:00:00+02:00"})
    assert fast.decode_event(raw).timestamp == datetime(2026, 11, 23, 12, tzinfo=UTC)
    naive = fast.decode_event(orjson.dumps({"service": "s", "timestamp": "2026-11-23T12:00:00"}))
    assert naive.timestamp.utcoffset() == timedelta(0)
