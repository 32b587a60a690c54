"""The event contract: what producers may send and what they are told when they get it wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from producers.capture import event_from_exception
from schemas import DeadLetter, ErrorEvent
from schemas.export import export_json_schemas


def test_minimal_event_gets_id_timestamp_and_defaults() -> None:
    e = ErrorEvent.model_validate({"service": "api", "message": "boom"})
    assert e.level == "error" and e.environment == "production"
    assert e.timestamp.tzinfo is UTC and e.event_id.version == 4


def test_timestamps_are_normalised_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    e = ErrorEvent(service="api", timestamp=datetime(2026, 1, 1, 12, 0, tzinfo=cet))
    assert e.timestamp == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    naive = ErrorEvent.model_validate({"service": "api", "timestamp": "2026-01-01T12:00:00"})
    assert naive.timestamp == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("alias,level", [("fatal", "critical"), ("WARN", "warning"), ("Error", "error")])
def test_common_level_spellings_are_accepted(alias: str, level: str) -> None:
    assert ErrorEvent(service="api", level=alias).level == level  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload,where",
    [
        ({"service": ""}, "service"),
        ({"service": "has space"}, "service"),
        ({"service": "api", "level": "apocalyptic"}, "level"),
        ({"service": "api", "tags": {"k": "v" * 201}}, "tags"),
        ({"service": "api", "breadcrumbs": [{}] * 101}, "breadcrumbs"),
        ({"service": "api", "trace_id": "not-hex"}, "trace_id"),
        ({"service": "api", "exceptions": [{"type": "E", "stacktrace": [{}] * 251}]}, "exceptions.0.stacktrace"),
    ],
)
def test_limits_are_enforced_with_a_precise_location(payload: dict, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        ErrorEvent.model_validate(payload)
    assert any(".".join(map(str, err["loc"])).startswith(where) for err in info.value.errors())


def test_real_exception_chain_is_ordered_root_cause_first() -> None:
    def lookup() -> None:
        empty: dict[str, int] = {}
        empty["user_id"]  # noqa: B018

    try:
        try:
            lookup()
        except KeyError as exc:
            raise RuntimeError("profile unavailable") from exc
    except RuntimeError as exc:
        event = event_from_exception(exc, service="profile")
    assert [x.type for x in event.exceptions] == ["KeyError", "RuntimeError"]
    root_frames = event.exceptions[0].stacktrace
    assert (root_frames[-1].function or "").endswith("lookup") and root_frames[-1].in_app
    assert root_frames[-1].context_line == 'empty["user_id"]  # noqa: B018'


def test_dead_letter_keeps_undecodable_payloads_as_base64() -> None:
    dl = DeadLetter.for_payload(b"\xff\x00", reason="invalid_json", detail="x", source_topic="errors")
    assert dl.payload_encoding == "base64" and dl.payload == "/wA=" and dl.payload_size == 2


def test_exported_json_schema_validates_what_pydantic_accepts(tmp_path: Path) -> None:
    paths = {p.name for p in export_json_schemas(tmp_path)}
    assert {"error_event.schema.json", "alert_event.schema.json", "dead_letter.schema.json"} <= paths
    schema = json.loads((tmp_path / "error_event.schema.json").read_text())
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        good = event_from_exception(exc, service="api").model_dump(mode="json")
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"service": "api", "level": "apocalyptic"}, schema)


def test_exported_json_schema_carries_the_storable_bounds(tmp_path: Path) -> None:
    """Producers in other languages see the same bounds the worker enforces (docs/ingestion.md)."""
    export_json_schemas(tmp_path)
    schema = json.loads((tmp_path / "error_event.schema.json").read_text())
    event = {"service": "api", "exceptions": [{"type": "E", "stacktrace": [{"lineno": 2**32 - 1}]}]}
    jsonschema.validate(event, schema)
    event["exceptions"][0]["stacktrace"][0]["lineno"] = 2**32  # type: ignore[index]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, schema)
    # what JSON Schema cannot express is described where a reader of the schema looks
    assert "nested at most 20 levels" in schema["properties"]["context"]["description"]
    assert "original_timestamp" in schema["properties"]["timestamp"]["description"]
    processed = json.loads((tmp_path / "processed_event.schema.json").read_text())
    assert "original_timestamp" in processed["properties"]
    dead = json.loads((tmp_path / "dead_letter.schema.json").read_text())
    assert "stage" in dead["properties"]


def test_exported_json_schema_takes_every_level_spelling_the_worker_takes(tmp_path: Path) -> None:
    export_json_schemas(tmp_path)
    schema = json.loads((tmp_path / "error_event.schema.json").read_text())
    for level in ("fatal", "FATAL", "Fatal", "warn", "critical", "ERROR", "err", "crit", "debug"):
        jsonschema.validate({"service": "api", "level": level}, schema)
        assert ErrorEvent.model_validate({"service": "api", "level": level}).level in (
            "debug", "info", "warning", "error", "critical")
    for level in ("apocalyptic", "fatal ", ""):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"service": "api", "level": level}, schema)
