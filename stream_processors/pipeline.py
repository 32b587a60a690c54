"""The worker's per-event processing, free of Kafka so it can be tested and benchmarked alone.

``process`` turns raw bytes from ``errors`` into either a ``ProcessedEvent``
(forwarded to the sinks) or a ``DeadLetter`` (sent to ``errors.dlq``). It never
raises for bad input: every failure becomes a dead letter with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

from schemas.dead_letter import DeadLetter, ValidationProblem
from schemas.events import ErrorEvent
from schemas.limits import MAX_EVENT_BYTES
from schemas.processed import ProcessedEvent
from stream_processors.fingerprint import group_event
from stream_processors.metrics import EVENTS, REJECTED


@dataclass
class Outcome:
    processed: ProcessedEvent | None = None
    dead_letter: DeadLetter | None = None


@dataclass
class EventProcessor:
    source_topic: str = "errors"
    counts: dict[str, int] = field(default_factory=dict)

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        EVENTS.labels(outcome).inc()

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

    def process(self, raw: bytes | None, *, partition: int | None = None, offset: int | None = None,
                received_at: datetime | None = None) -> Outcome:
        raw = raw or b""
        if len(raw) > MAX_EVENT_BYTES:
            return self._reject(raw, "too_large", f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}",
                                None, partition, offset)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self._reject(raw, "invalid_json", f"not valid JSON: {exc}", None, partition, offset)
        if not isinstance(data, dict):
            return self._reject(raw, "invalid_event", "an event must be a JSON object", None, partition, offset)
        try:
            event = ErrorEvent.model_validate(data)
        except ValidationError as exc:
            problems = [
                ValidationProblem(loc=".".join(str(p) for p in err["loc"]) or "(event)", msg=err["msg"])
                for err in exc.errors(include_url=False)[:20]
            ]
            detail = "; ".join(f"{p.loc}: {p.msg}" for p in problems)
            return self._reject(raw, "invalid_event", detail, problems, partition, offset)
        try:
            grouping = group_event(event)
        except Exception as exc:  # a bug in grouping must not kill the worker nor lose the event
            return self._reject(raw, "processing_error", f"{type(exc).__name__}: {exc}", None, partition, offset)
        self._count("accepted")
        return Outcome(
            processed=ProcessedEvent(
                event=event,
                fingerprint=grouping.fingerprint,
                title=grouping.title,
                culprit=grouping.culprit,
                exception_type=grouping.exception_type,
                received_at=received_at or datetime.now(UTC),
            )
        )
