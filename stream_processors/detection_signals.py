"""The slim view of a processed event that detection needs.

Built by the processing stage from each processed event and sent in this
compact positional form, bundled per partition, to detection's topics (by
fingerprint, then by service and by trace). ``from_processed`` reads the
processed topic's JSON, for tools and tests.

``src_partition``/``src_offset`` name the ``errors`` record the signal came
from. A replay of that record (the processing stage re-processing after a
crash or a rebalance) yields a signal with the same source, which is how
detection's state recognises input it already counted (``detection_rules/replay.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from schemas.fast import ProcessedEvent

MAX_FUTURE = 300.0  # seconds an event may be ahead of its receive time before we distrust its clock


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _event_time(ts: float, received: float) -> float:
    """A clock far ahead would close every window of the key at once: such events count as received."""
    return received if ts > received + MAX_FUTURE else ts


@dataclass(slots=True)
class Signal:
    event_id: str
    service: str
    fingerprint: str
    title: str
    level: str
    ts: float  # event time, epoch seconds (UTC)
    received: float  # when the worker received it: decides regressions against a resolution time
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    src_partition: int | None = None  # the ``errors`` partition and offset this event was read from
    src_offset: int | None = None
    release: str = ""  # with a default: bundles written before it existed still load
    # during a grouping upgrade, the previous version's fingerprint when it differs (docs/grouping.md)
    previous: str = ""

    @classmethod
    def from_processed(cls, raw: bytes) -> Signal:
        """Raises ValueError/KeyError/TypeError on a record that is not a ProcessedEvent."""
        d = orjson.loads(raw)
        ev = d["event"]
        received = _epoch(d["received_at"])
        ts = _event_time(_epoch(ev["timestamp"]), received)
        return cls(
            event_id=ev["event_id"], service=ev["service"], fingerprint=d["fingerprint"], title=d.get("title", ""),
            level=ev.get("level", "error"), ts=ts, received=received, trace_id=ev.get("trace_id"),
            span_id=ev.get("span_id"), parent_span_id=ev.get("parent_span_id"), release=ev.get("release") or "",
            previous=d.get("previous_fingerprint") or "",
        )

    @classmethod
    def from_event(cls, p: ProcessedEvent, partition: int | None = None, offset: int | None = None) -> Signal:
        """From the worker's own processed event, before it is serialised (the processing stage).

        ``partition``/``offset``: where the stage read the event on ``errors``; without them detection
        cannot tell a replayed signal from a new one.
        """
        ev = p.event
        received = p.received_at.timestamp()
        ts = _event_time(ev.timestamp.timestamp(), received)
        return cls(str(ev.event_id), ev.service, p.fingerprint, p.title, ev.level, ts, received, ev.trace_id,
                   ev.span_id, ev.parent_span_id, partition, offset, ev.release or "", p.previous_fingerprint)

    def fields(self) -> list[Any]:
        """Positional form (the constructor's order): compact on the repartition topics."""
        return [self.event_id, self.service, self.fingerprint, self.title, self.level, self.ts, self.received,
                self.trace_id, self.span_id, self.parent_span_id, self.src_partition, self.src_offset, self.release,
                self.previous]

    def dumps(self) -> bytes:
        return orjson.dumps(self.fields())

    @classmethod
    def loads(cls, raw: bytes) -> Signal:
        v: list[Any] = orjson.loads(raw)
        return cls(*v)
