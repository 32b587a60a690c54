"""The worker's per-event processing, free of Kafka so it can be tested and benchmarked alone.

``process`` turns raw bytes from ``errors`` into either a ``ProcessedEvent``
(forwarded to the sinks, already encoded, with its detection signal) or a
``DeadLetter`` (sent to ``errors.dlq``). It is total: whatever one record
does — bad input, or a bug it triggers in any step — ends as a dead letter
with the stage and a reason, counted, and never as an exception that would
stop the partition.

Validation decodes with the msgspec mirror of the schema (``schemas.fast``)
and asks pydantic, the contract, only about what the mirror refused: pydantic
then either explains the rejection or accepts a lax form the mirror does not
convert. msgspec recurses while decoding, so a deeply nested document raises
``RecursionError`` there; it is handed to pydantic like any other refusal,
whose parser stops at a fixed depth with a validation error.

Order matters: validate → clamp the timestamp → scrub → fingerprint → sample
→ rate-limit → encode and build the detection signal. Scrubbing comes before
anything leaves the worker, so only the scrubbed event is ever forwarded;
grouping runs on the scrubbed event and gives the same fingerprint as on the
raw one (see ``sensitive.py``). Sampling and rate limits only decide
``stored``: every valid event is forwarded so the sink counts it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from errstream_core.settings import Settings
from schemas.dead_letter import DeadLetter, ValidationProblem
from schemas.events import ErrorEvent as EventModel
from schemas.fast import DecodeError, ErrorEvent, ProcessedEvent, decode_event, encode, event_from_model
from schemas.limits import MAX_EVENT_BYTES, MAX_PROCESSED_BYTES, MAX_TIMESTAMP, MIN_TIMESTAMP
from stream_processors.detection_signals import Signal
from stream_processors.fingerprint import GROUPING_VERSION, PREVIOUS_GROUPING_VERSION, group_event
from stream_processors.grouping_rules_follower import RulesBook
from stream_processors.metrics import (
    ADJUSTED,
    EVENTS,
    LAX_EVENTS,
    RATE_LIMITED,
    REJECTED,
    TRANSITION_GROUPINGS,
)
from stream_processors.rate_limit import RATE_LIMITED_FINGERPRINT, RateLimiter
from stream_processors.sampling import SamplingPolicy, keep
from stream_processors.scrub import Scrubber

SAMPLED_OUT = "sampled_out"
TOO_OLD = "timestamp_too_old"
IN_FUTURE = "timestamp_in_future"
_OUTCOME_COUNTERS: dict[str, Any] = {}
_COMPUTED, _SETTLED = TRANSITION_GROUPINGS.labels("computed"), TRANSITION_GROUPINGS.labels("settled")
_RATE_LIMITED_BY_SCOPE = {True: RATE_LIMITED.labels("fingerprint"), False: RATE_LIMITED.labels("global")}


@dataclass
class Outcome:
    processed: ProcessedEvent | None = None
    dead_letter: DeadLetter | None = None
    encoded: bytes = b""  # the processed event's JSON, for the processed topic
    signal: list[Any] | None = None  # detection's positional signal (``Signal.fields()``), when detection is on


@dataclass
class EventProcessor:
    source_topic: str = "errors"
    scrubber: Scrubber = field(default_factory=Scrubber)
    sampling: SamplingPolicy = field(default_factory=SamplingPolicy)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    # the published server-side grouping rules, by the time each version takes effect (grouping_rules_follower.py)
    rules: RulesBook = field(default_factory=RulesBook)
    detection: bool = False  # build each event's detection signal
    # grouping version of new fingerprints, and the upgrade transition (docs/grouping.md#grouping-versions):
    # before ``transition_until_ms`` (broker time; None: no end) the previous version's fingerprint is
    # computed too and carried as ``previous_fingerprint`` when it differs
    grouping_version: int = GROUPING_VERSION
    previous_version: int | None = PREVIOUS_GROUPING_VERSION
    transition_until_ms: int | None = None
    # fingerprints detection has already decided (``Detection.settled``): their events skip the second grouping
    settled: Callable[[str], bool] | None = None
    max_past: timedelta = timedelta(days=30)
    max_future: timedelta = timedelta(minutes=5)
    # accepted (stored), sampled_out, rate_limited, rejected: they add up to every input event
    counts: dict[str, int] = field(default_factory=dict)
    adjusted: dict[str, int] = field(default_factory=dict)  # valid events stored with an adjustment, by reason
    _window: tuple[datetime, datetime, datetime] = field(  # (received, earliest, latest) accepted timestamp
        default=(MIN_TIMESTAMP, MIN_TIMESTAMP, MIN_TIMESTAMP), repr=False)
    # per-event metric increments not yet added to their counters (``flush_metrics``): a counter's ``inc`` takes
    # a lock, and three of them per event cost more than adding to a dict
    _tally: dict[Any, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventProcessor:
        return cls(
            source_topic=settings.topic_errors,
            scrubber=Scrubber.from_settings(settings),
            sampling=SamplingPolicy(settings.sample_rates, settings.service_sample_rates),
            rate_limiter=RateLimiter(settings.rate_limit_per_fingerprint, settings.rate_limit_global),
            detection=settings.detection_enabled,
            grouping_version=settings.grouping_version,
            previous_version=(settings.grouping_previous_version
                              if settings.grouping_previous_version != settings.grouping_version else None),
            transition_until_ms=(int(settings.grouping_transition_until.timestamp() * 1000)
                                 if settings.grouping_transition_until is not None else None),
            max_past=timedelta(seconds=settings.event_max_past_seconds),
            max_future=timedelta(seconds=settings.event_max_future_seconds),
        )

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        counter = _OUTCOME_COUNTERS.get(outcome)
        if counter is None:  # labels() takes a lock and a dict lookup: bind each outcome once
            counter = _OUTCOME_COUNTERS[outcome] = EVENTS.labels(outcome)
        self._bump(counter)

    def _bump(self, counter: Any) -> None:
        tally = self._tally
        tally[counter] = tally.get(counter, 0) + 1

    def flush_metrics(self) -> None:
        """Add the tallied increments to their counters: the processing stage calls it once per poll."""
        tally, self._tally = self._tally, {}
        for counter, n in tally.items():
            counter.inc(n)

    def _reject(self, raw: bytes, stage: str, reason: str, detail: str, problems: list[ValidationProblem] | None,
                partition: int | None, offset: int | None) -> Outcome:
        self._count("rejected")
        REJECTED.labels(stage, reason).inc()
        return Outcome(
            dead_letter=DeadLetter.for_payload(
                raw, stage=stage, reason=reason, detail=detail, problems=problems,  # type: ignore[arg-type]
                source_topic=self.source_topic, partition=partition, offset=offset,
            )
        )

    def _validate(self, raw: bytes, partition: int | None, offset: int | None) -> ErrorEvent | Outcome:
        try:
            return decode_event(raw)
        except (DecodeError, RecursionError):
            pass  # pydantic decides: it explains a rejection precisely, or accepts a lax form
        try:
            model = EventModel.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if errors and errors[0]["type"] == "json_invalid":
                msg = errors[0]["msg"]
                if "recursion limit" in msg:  # valid JSON perhaps, but deeper than any event may be
                    return self._reject(raw, "validate", "invalid_event", f"nested too deeply: {msg}",
                                        None, partition, offset)
                return self._reject(raw, "validate", "invalid_json", f"not valid JSON: {msg}",
                                    None, partition, offset)
            if errors and errors[0]["type"] == "model_type" and not errors[0]["loc"]:
                return self._reject(raw, "validate", "invalid_event", "an event must be a JSON object",
                                    None, partition, offset)
            problems = [
                ValidationProblem(loc=".".join(str(p) for p in err["loc"]) or "(event)", msg=err["msg"][:1_000])
                for err in errors[:20]
            ]
            detail = "; ".join(f"{p.loc}: {p.msg}" for p in problems)
            return self._reject(raw, "validate", "invalid_event", detail, problems, partition, offset)
        LAX_EVENTS.inc()
        try:
            return event_from_model(model)
        except (DecodeError, RecursionError) as exc:  # valid for pydantic, not for the mirror
            return self._reject(raw, "validate", "invalid_event", f"unsupported value: {exc}", None,
                                partition, offset)

    def _clamp(self, event: ErrorEvent, received: datetime) -> datetime | None:
        """Outside the accepted window the receive time is stored; returns the original timestamp then."""
        ts = event.timestamp
        window = self._window
        if window[0] != received:  # the processing stage passes one receive time per poll: compute once
            window = self._window = (received, max(received - self.max_past, MIN_TIMESTAMP),
                                     min(received + self.max_future, MAX_TIMESTAMP))
        low, high = window[1], window[2]
        if low <= ts <= high:
            return None
        reason = TOO_OLD if ts < low else IN_FUTURE
        self.adjusted[reason] = self.adjusted.get(reason, 0) + 1
        ADJUSTED.labels(reason).inc()
        event.timestamp = received
        return ts

    def _storage(self, event: ErrorEvent, fingerprint: str) -> tuple[float, str | None]:
        """(sample rate, drop reason): a drop reason means counted but not stored."""
        rate = self.sampling.rate(event.service, event.level)
        if not keep(event.event_id, rate):
            return rate, SAMPLED_OUT
        return rate, self.rate_limiter.admit(fingerprint, event.timestamp)

    def _in_transition(self, record_timestamp_ms: int | None, received: datetime) -> bool:
        """True while an upgrade's transition holds at the record's broker time (else the receive time)."""
        if self.previous_version is None or self.previous_version == self.grouping_version:
            return False
        if self.transition_until_ms is None:
            return True
        now_ms = record_timestamp_ms if record_timestamp_ms is not None else int(received.timestamp() * 1000)
        return now_ms < self.transition_until_ms

    def process(self, raw: bytes | None, *, partition: int | None = None, offset: int | None = None,
                received_at: datetime | None = None, record_timestamp_ms: int | None = None) -> Outcome:
        """``record_timestamp_ms`` (the record's broker time) picks the grouping rules version in force."""
        raw = raw or b""
        stage = "decode"
        try:
            if len(raw) > MAX_EVENT_BYTES:
                return self._reject(raw, stage, "too_large",
                                    f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}",
                                    None, partition, offset)
            stage = "validate"
            event = self._validate(raw, partition, offset)
            if isinstance(event, Outcome):
                return event
            received = received_at or datetime.now(UTC)
            original = self._clamp(event, received)
            stage = "scrub"
            self.scrubber.scrub(event)
            stage = "fingerprint"
            rules = self.rules.at(record_timestamp_ms)
            grouping = group_event(event, rules, version=self.grouping_version)
            previous = ""
            if self._in_transition(record_timestamp_ms, received):
                if self.settled is not None and self.settled(grouping.fingerprint):
                    self._bump(_SETTLED)
                else:
                    self._bump(_COMPUTED)
                    before = group_event(event, rules, version=self.previous_version)  # type: ignore[arg-type]
                    if before.fingerprint != grouping.fingerprint:
                        previous = before.fingerprint
            stage = "sample"
            sample_rate, drop_reason = self._storage(event, grouping.fingerprint)
            processed = ProcessedEvent(
                event=event,
                fingerprint=grouping.fingerprint,
                title=grouping.title,
                culprit=grouping.culprit,
                exception_type=grouping.exception_type,
                sample_rate=sample_rate,
                stored=drop_reason is None,
                drop_reason=drop_reason,
                received_at=received,
                original_timestamp=original,
                grouping_rules=grouping.rules_version,
                grouping_version=grouping.version,
                previous_fingerprint=previous,
            )
            stage = "encode"
            encoded = encode(processed)
            if len(encoded) > MAX_PROCESSED_BYTES:  # the producer or the broker would refuse it
                return self._reject(raw, stage, "too_large",
                                    f"processed event is {len(encoded)} bytes; the limit is {MAX_PROCESSED_BYTES}",
                                    None, partition, offset)
            stage = "signals"
            signal = Signal.from_event(processed, partition, offset).fields() if self.detection else None
        except Exception as exc:  # noqa: BLE001 - one record, whatever it triggers, must not stop the partition
            return self._reject(raw, stage, "processing_error", f"{type(exc).__name__}: {exc}"[:4_000], None,
                                partition, offset)
        if drop_reason is None:
            self._count("accepted")
        elif drop_reason == SAMPLED_OUT:
            self._count(SAMPLED_OUT)
        else:
            self._count("rate_limited")
            self._bump(_RATE_LIMITED_BY_SCOPE[drop_reason == RATE_LIMITED_FINGERPRINT])
        return Outcome(processed=processed, encoded=encoded, signal=signal)
