"""The worker's per-event processing, free of Kafka so it can be tested and benchmarked alone.

``process`` turns raw bytes from ``errors`` into either a ``ProcessedEvent``
(forwarded to the sinks) or a ``DeadLetter`` (sent to ``errors.dlq``). It never
raises for bad input: every failure becomes a dead letter with a reason.

Validation decodes with the msgspec mirror of the schema (``schemas.fast``)
and asks pydantic, the contract, only about what the mirror refused: pydantic
then either explains the rejection or accepts a lax form the mirror does not
convert. ``ProcessedEvent`` here is the mirror too; ``schemas.fast.encode``
gives the JSON the sinks parse with the pydantic model.

Order matters: validate → scrub → fingerprint → sample → rate-limit.
Scrubbing comes before anything leaves the worker, so only the scrubbed event
is ever forwarded; grouping runs on the scrubbed event and gives the same
fingerprint as on the raw one (see ``sensitive.py``). Sampling and rate limits
only decide ``stored``: every valid event is forwarded so the sink counts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from errstream_core.settings import Settings
from schemas.dead_letter import DeadLetter, ValidationProblem
from schemas.events import ErrorEvent as EventModel
from schemas.fast import DecodeError, ErrorEvent, ProcessedEvent, decode_event, event_from_model
from schemas.limits import MAX_EVENT_BYTES
from stream_processors.fingerprint import group_event
from stream_processors.metrics import EVENTS, LAX_EVENTS, RATE_LIMITED, REJECTED
from stream_processors.rate_limit import RATE_LIMITED_FINGERPRINT, RateLimiter
from stream_processors.sampling import SamplingPolicy, keep
from stream_processors.scrub import Scrubber

SAMPLED_OUT = "sampled_out"
_OUTCOME_COUNTERS: dict[str, Any] = {}
_RATE_LIMITED_BY_SCOPE = {True: RATE_LIMITED.labels("fingerprint"), False: RATE_LIMITED.labels("global")}


@dataclass
class Outcome:
    processed: ProcessedEvent | None = None
    dead_letter: DeadLetter | None = None


@dataclass
class EventProcessor:
    source_topic: str = "errors"
    scrubber: Scrubber = field(default_factory=Scrubber)
    sampling: SamplingPolicy = field(default_factory=SamplingPolicy)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    # accepted (stored), sampled_out, rate_limited, rejected: they add up to every input event
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventProcessor:
        return cls(
            source_topic=settings.topic_errors,
            scrubber=Scrubber.from_settings(settings),
            sampling=SamplingPolicy(settings.sample_rates, settings.service_sample_rates),
            rate_limiter=RateLimiter(settings.rate_limit_per_fingerprint, settings.rate_limit_global),
        )

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        counter = _OUTCOME_COUNTERS.get(outcome)
        if counter is None:  # labels() takes a lock and a dict lookup: bind each outcome once
            counter = _OUTCOME_COUNTERS[outcome] = EVENTS.labels(outcome)
        counter.inc()

    def _reject(self, raw: bytes, reason: str, detail: str, problems: list[ValidationProblem] | None,
                partition: int | None, offset: int | None) -> Outcome:
        self._count("rejected")
        REJECTED.labels(reason).inc()
        return Outcome(
            dead_letter=DeadLetter.for_payload(
                raw, reason=reason, detail=detail, problems=problems,  # type: ignore[arg-type]
                source_topic=self.source_topic, partition=partition, offset=offset,
            )
        )

    def _validate(self, raw: bytes, partition: int | None, offset: int | None) -> ErrorEvent | Outcome:
        try:
            return decode_event(raw)
        except DecodeError:
            pass  # pydantic decides: it explains a rejection precisely, or accepts a lax form
        try:
            model = EventModel.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if errors and errors[0]["type"] == "json_invalid":
                return self._reject(raw, "invalid_json", f"not valid JSON: {errors[0]['msg']}",
                                    None, partition, offset)
            if errors and errors[0]["type"] == "model_type" and not errors[0]["loc"]:
                return self._reject(raw, "invalid_event", "an event must be a JSON object",
                                    None, partition, offset)
            problems = [
                ValidationProblem(loc=".".join(str(p) for p in err["loc"]) or "(event)", msg=err["msg"])
                for err in errors[:20]
            ]
            detail = "; ".join(f"{p.loc}: {p.msg}" for p in problems)
            return self._reject(raw, "invalid_event", detail, problems, partition, offset)
        LAX_EVENTS.inc()
        try:
            return event_from_model(model)
        except DecodeError as exc:  # valid for pydantic, out of range for the worker (e.g. a 2**70 lineno)
            return self._reject(raw, "invalid_event", f"unsupported value: {exc}", None, partition, offset)

    def _storage(self, event: ErrorEvent, fingerprint: str) -> tuple[float, str | None]:
        """(sample rate, drop reason): a drop reason means counted but not stored."""
        rate = self.sampling.rate(event.service, event.level)
        if not keep(event.event_id, rate):
            self._count(SAMPLED_OUT)
            return rate, SAMPLED_OUT
        limited = self.rate_limiter.admit(fingerprint, event.timestamp)
        if limited is not None:
            self._count("rate_limited")
            _RATE_LIMITED_BY_SCOPE[limited == RATE_LIMITED_FINGERPRINT].inc()
            return rate, limited
        self._count("accepted")
        return rate, None

    def process(self, raw: bytes | None, *, partition: int | None = None, offset: int | None = None,
                received_at: datetime | None = None) -> Outcome:
        raw = raw or b""
        if len(raw) > MAX_EVENT_BYTES:
            return self._reject(raw, "too_large", f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}",
                                None, partition, offset)
        event = self._validate(raw, partition, offset)
        if isinstance(event, Outcome):
            return event
        try:
            self.scrubber.scrub(event)
            grouping = group_event(event)
        except Exception as exc:  # noqa: BLE001 - a bug in scrubbing/grouping must not kill the worker nor lose the event
            return self._reject(raw, "processing_error", f"{type(exc).__name__}: {exc}", None, partition, offset)
        sample_rate, drop_reason = self._storage(event, grouping.fingerprint)
        return Outcome(
            processed=ProcessedEvent(
                event=event,
                fingerprint=grouping.fingerprint,
                title=grouping.title,
                culprit=grouping.culprit,
                exception_type=grouping.exception_type,
                sample_rate=sample_rate,
                stored=drop_reason is None,
                drop_reason=drop_reason,
                received_at=received_at or datetime.now(UTC),
            )
        )
