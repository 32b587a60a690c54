"""Property tests: whatever arrives, the worker and the sink's row building end in a row or a dead letter.

Arbitrary JSON values (with huge and non-finite numbers, lone surrogates, NUL,
deep nesting) and arbitrary bytes go through the real ``EventProcessor`` and
then ``sinks.clickhouse.rows.prepare_record``. Every input must end as rows that
clickhouse-connect serialises for the columns the migrations declare, or as a
dead letter with a stage and a reason — never as an exception, and never as
an event the worker accepts and the sink then refuses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.dead_letter import DeadLetter
from schemas.fast import encode
from sinks.clickhouse.rows import (
    EVENT_COLUMNS,
    OCCURRENCE_COLUMNS,
    RECOVERY_COLUMNS,
    MinuteCounts,
    PreparedRecord,
    RecoveryCounts,
    counted_only,
    occurrence,
    prepare_record,
)
from stream_processors.event_processor import EventProcessor
from stream_processors.scrub import Scrubber
from tests.support.hostile import VALID_EVENT, hostile_corpus
from tests.support.native import serialise

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none() | st.booleans()
    | st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=30)  # surrogates and NUL included
    | st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z",
                       "2106-02-07T06:28:16Z", "2026-11-23T12:00:00", "error", "WARN", "billing", "a" * 32])
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)
# values of the right kind for many fields, so that a fair share of the events is valid and reaches the sink
plausible = (
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
    | st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5) | st.integers() | st.floats(), max_size=3)
    | st.lists(st.fixed_dictionaries({"type": st.text(min_size=1, max_size=10)},
                                     optional={"value": st.text(max_size=10)}), max_size=2)
)
FIELDS = ["event_id", "timestamp", "service", "environment", "release", "level", "message", "exceptions", "user",
          "request", "tags", "context", "breadcrumbs", "trace_id", "fingerprint", "sdk", "platform", "logger"]


@st.composite
def event_like(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with some fields (or frame fields) replaced by arbitrary JSON: close enough to pass often."""
    event: dict[str, Any] = {**json.loads(json.dumps(VALID_EVENT)), "timestamp": NOW.isoformat()}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        event[name] = draw(json_values | plausible)
    if draw(st.integers(0, 3)) == 0:
        frame = event.setdefault("exceptions", [{"type": "E"}])
        if isinstance(frame, list) and frame and isinstance(frame[0], dict):
            frame[0]["stacktrace"] = [{draw(st.sampled_from(["lineno", "colno", "function", "in_app"])):
                                       draw(json_values)}]
    return event


text = st.text(st.characters(codec="utf-8"), max_size=40)  # NUL and any code point but surrogates


@st.composite
def well_typed(draw: st.DrawFn) -> dict[str, Any]:
    """Every field of the right type, with hostile values: any text, any date, any number, any nesting."""
    frame = {"function": draw(text), "module": draw(text), "lineno": draw(st.integers(0, 2**40)),
             "in_app": draw(st.booleans()), "context_line": draw(text)}
    return {
        "event_id": str(draw(st.uuids())),
        "timestamp": draw(st.datetimes(timezones=st.just(UTC)) | st.datetimes() | st.datetimes(
            NOW.replace(tzinfo=None) - timedelta(days=31), NOW.replace(tzinfo=None) + timedelta(minutes=6),
            timezones=st.just(UTC))).isoformat(),
        "service": draw(st.from_regex(r"[A-Za-z0-9_.:/-]{1,20}", fullmatch=True)),
        "environment": draw(text.filter(bool)),
        "level": draw(st.sampled_from(["debug", "info", "warning", "error", "critical", "WARN", "fatal"])),
        "message": draw(text),
        "exceptions": [{"type": draw(text.filter(bool)), "value": draw(text), "stacktrace": [frame]}],
        "user": {"id": draw(text), "email": draw(text)},
        "tags": draw(st.dictionaries(text.filter(bool), text, max_size=4)),
        "context": draw(st.dictionaries(text, json_values, max_size=4)),
        "breadcrumbs": [{"timestamp": draw(st.datetimes()).isoformat(), "message": draw(text),
                         "data": draw(st.dictionaries(text, json_values, max_size=3))}],
        "fingerprint": draw(st.none() | st.lists(text.filter(bool), min_size=1, max_size=3)),
    }


def _json(value: Any) -> bytes:
    """The standard library: it writes NaN, Infinity, any integer and lone surrogates (as escapes)."""
    return json.dumps(value).encode()


def _check(raw: bytes) -> str:
    """Runs one input through the worker and the sink's rows; returns how it ended."""
    outcome = EventProcessor(detection=True).process(raw, partition=0, offset=7, received_at=NOW)
    assert (outcome.processed is None) != (outcome.dead_letter is None)
    if outcome.dead_letter is not None:
        _assert_dead_letter(outcome.dead_letter)
        return f"dlq:{outcome.dead_letter.stage}:{outcome.dead_letter.reason}"
    assert outcome.signal is not None
    record = prepare_record(outcome.encoded, source_topic="processed", partition=0, offset=7)
    assert isinstance(record, PreparedRecord), f"worker accepted, sink refused: {record}"
    _assert_storable(record)
    return "stored" if outcome.processed and outcome.processed.original_timestamp is None else "adjusted"


def _assert_dead_letter(dl: DeadLetter) -> None:
    assert dl.stage and dl.reason and dl.detail
    assert DeadLetter.model_validate_json(dl.model_dump_json()) == dl  # it reaches errors.dlq intact


def _assert_storable(record: PreparedRecord) -> None:
    if record.event_row is not None:
        serialise("error_events", EVENT_COLUMNS, [record.event_row])
    counts = MinuteCounts()
    counts.add_occurrence(record.occurrence)
    serialise("error_occurrences_in", OCCURRENCE_COLUMNS, counts.rows())
    recovery = RecoveryCounts()
    recovery.add_occurrence(record.occurrence)
    serialise("recovery_occurrences_in", RECOVERY_COLUMNS, recovery.rows())


@PROPERTY
@given(event_like())
def test_event_like_json_ends_as_a_storable_row_or_a_dead_letter(event: dict[str, Any]) -> None:
    _check(_json(event))


@PROPERTY
@given(well_typed())
def test_well_typed_events_with_hostile_values_end_as_a_storable_row_or_a_dead_letter(
        event: dict[str, Any]) -> None:
    _check(_json(event))


@PROPERTY
@given(json_values)
def test_any_json_value_ends_as_a_storable_row_or_a_dead_letter(value: Any) -> None:
    _check(_json(value))


@PROPERTY
@given(st.binary(max_size=300) | event_like().map(_json).flatmap(
    lambda raw: st.integers(0, len(raw)).map(lambda n: raw[:n])))  # arbitrary bytes, and truncated events
def test_any_bytes_end_as_a_storable_row_or_a_dead_letter(raw: bytes) -> None:
    _check(raw)


@PROPERTY
@given(json_values | event_like().map(lambda e: {"event": e, "fingerprint": "f" * 32, "received_at": e.get(
    "timestamp"), "stored": True, "sample_rate": 1.0}))
def test_the_sink_turns_any_record_into_storable_rows_or_a_dead_letter(value: Any) -> None:
    """The processed topic is ours, but a record there can still be anything (a bug, a replay, an operator)."""
    record = prepare_record(_json(value), source_topic="processed", partition=1, offset=3)
    if isinstance(record, DeadLetter):
        assert record.stage == "rows"
        _assert_dead_letter(record)
    else:
        _assert_storable(record)


def _counted_as(p: Any) -> Any:
    try:
        return occurrence(p)
    except Exception as exc:  # noqa: BLE001 - how it fails is what is compared
        return type(exc)


@PROPERTY
@given(st.tuples(event_like() | well_typed(), st.sampled_from([False, None, 0, True]), text,
                 st.none() | st.fixed_dictionaries({"method": text, "successful": st.booleans()})).map(
    lambda v: {"event": {**v[0], "release": v[2], "recovery": v[3]}, "fingerprint": "f" * 32,
               "title": v[0].get("message"), "stored": v[1]}))
def test_a_counted_only_record_counts_as_its_full_parse_does(value: dict[str, Any]) -> None:
    """The sink reads only the counted fields of an event it does not store: the same counts, the same refusals."""
    raw = _json(value)
    slim = counted_only(raw)
    if value["stored"]:
        assert slim is None  # a stored event is parsed whole, for its raw row
    elif slim is not None:
        assert _counted_as(slim) == _counted_as(orjson.loads(raw))


def test_the_hostile_corpus_ends_as_documented() -> None:
    """Each hostile input of the e2e corpus ends as the corpus says, without Kafka or ClickHouse."""
    for case in hostile_corpus(NOW):
        ended = _check(case.raw)
        assert ended.startswith(case.expect), f"{case.name}: {ended}"


def test_valid_events_with_extreme_dates_are_stored_at_the_receive_time_with_the_original_kept() -> None:
    processor = EventProcessor()
    for ts in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2026-11-23T12:06:00Z"):
        out = processor.process(orjson.dumps({**VALID_EVENT, "timestamp": ts}), received_at=NOW).processed
        assert out is not None and out.event.timestamp == NOW
        assert out.original_timestamp == datetime.fromisoformat(ts)
        row = prepare_record(encode(out), source_topic="p")
        assert isinstance(row, PreparedRecord) and row.event_row is not None
        assert row.event_row[EVENT_COLUMNS.index("original_timestamp")].startswith(ts[:10])
    assert processor.adjusted == {"timestamp_too_old": 2, "timestamp_in_future": 2}
    inside = processor.process(orjson.dumps({**VALID_EVENT, "timestamp": "2026-11-23T11:00:00Z"}), received_at=NOW)
    assert inside.processed is not None and inside.processed.original_timestamp is None


class _BrokenScrubber(Scrubber):
    """A scrubber with a bug that one event triggers: stands for any step that raises."""

    def scrub(self, event: Any) -> Any:
        if event.message == "boom":
            raise RuntimeError("scrubber bug")
        return super().scrub(event)


def test_an_exception_in_any_step_is_a_dead_letter_with_its_stage_and_the_next_event_goes_through() -> None:
    processor = EventProcessor(scrubber=_BrokenScrubber())
    bad = processor.process(orjson.dumps({**VALID_EVENT, "message": "boom"}), partition=2, offset=9)
    assert bad.dead_letter is not None and bad.processed is None
    assert (bad.dead_letter.stage, bad.dead_letter.reason) == ("scrub", "processing_error")
    assert "RuntimeError: scrubber bug" in bad.dead_letter.detail
    assert (bad.dead_letter.source_partition, bad.dead_letter.source_offset) == (2, 9)
    assert processor.process(orjson.dumps(VALID_EVENT)).processed is not None
    assert processor.counts == {"rejected": 1, "accepted": 1}


def test_the_sink_dead_letters_a_record_whose_values_its_columns_cannot_hold() -> None:
    """A processed record from an older worker (or a replay) with a year-1 timestamp: one dead letter, no raise."""
    out = EventProcessor().process(orjson.dumps(VALID_EVENT), received_at=NOW).processed
    assert out is not None
    record = orjson.loads(encode(out))
    for mutate, expected in (
        (lambda r: r["event"].update(timestamp="0001-01-01T00:00:00Z"), "outside 1970-01-01..2106-02-07"),
        (lambda r: r["event"].update(level="apocalyptic"), "level"),
        (lambda r: r.update(sample_rate=5.0), "sample_rate"),
        (lambda r: r["event"].update(tags={"k": 1}), "must be a string"),
        (lambda r: r.pop("event"), "missing 'event'"),
    ):
        broken = orjson.loads(orjson.dumps(record))
        mutate(broken)
        dl = prepare_record(json.dumps(broken).encode(), source_topic="processed", partition=1, offset=5)
        assert isinstance(dl, DeadLetter) and dl.stage == "rows" and expected in dl.detail, dl
    assert isinstance(prepare_record(encode(out), source_topic="processed"), PreparedRecord)


def test_an_event_whose_processed_form_outgrows_a_kafka_batch_is_a_dead_letter() -> None:
    """Scrubbing lengthens short secrets to "[Filtered]": an event just under the input limit can outgrow it."""
    context = {f"k{i}": {f"password{j}": "x" for j in range(190)} for i in range(50)}  # 9,500 secrets
    event = {**VALID_EVENT, "context": context, "message": "m" * 8_000,
             "breadcrumbs": [{"message": "b" * 8_000}] * 100}
    raw = orjson.dumps(event)
    assert len(raw) < 1_000_000
    out = EventProcessor().process(raw, received_at=NOW)
    assert out.dead_letter is not None, len(out.encoded)
    assert (out.dead_letter.stage, out.dead_letter.reason) == ("encode", "too_large")
