"""Error chains: errors sharing a trace id across services within a short window.

The root is the earliest error; on a tie (same millisecond, common when one
request fails through several services) the deepest cause wins: the error whose
span is not the parent of another error's span in the chain. A chain is
published once it stops growing (``settle``), so the record and the alert name
the root and every service rather than the first two errors to arrive.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.alerts import AlertEvent
from schemas.chains import ChainEvent, ErrorChain
from stream_processors.detection_rules.alerts import make_alert, utc
from stream_processors.detection_signals import Signal

MAX_CHAIN_EVENTS = 100


@dataclass(slots=True)
class ChainState:
    trace_id: str
    events: list[list[Any]] = field(default_factory=list)  # Signal.fields(), arrival order
    published: bool = False
    alerted: bool = False
    dropped: int = 0  # errors beyond MAX_CHAIN_EVENTS or outside the window
    # derived from ``events`` on first use, then kept in step by ``add``: a hot trace (or a client that sends
    # one trace id with every event) must not cost a scan of its chain per error
    _ids: set[str] | None = field(default=None, init=False, repr=False, compare=False)
    _services: set[str] = field(default_factory=set, init=False, repr=False, compare=False)
    _first: float = field(default=0.0, init=False, repr=False, compare=False)
    _last: float = field(default=0.0, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.trace_id, "e": self.events, "p": self.published, "a": self.alerted, "d": self.dropped}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChainState:
        return cls(trace_id=d["t"], events=[list(e) for e in d["e"]], published=d["p"], alerted=d["a"],
                   dropped=d.get("d", 0))

    def signals(self) -> list[Signal]:
        return [Signal(*e) for e in self.events]

    def _index(self) -> set[str]:
        if self._ids is None:
            self._ids = {e[0] for e in self.events}
            self._services = {e[1] for e in self.events}
            times = [e[5] for e in self.events]
            self._first, self._last = (min(times), max(times)) if times else (0.0, 0.0)
        return self._ids

    def add(self, sig: Signal, window: float) -> bool:
        """Add an error of this trace; False when it is a duplicate or falls outside the chain's window."""
        ids = self._index()
        if sig.event_id in ids:
            return False  # redelivered
        if self.events:
            if sig.ts > self._first + window or sig.ts < self._last - window or len(self.events) >= MAX_CHAIN_EVENTS:
                self.dropped += 1
                return False
            self._first, self._last = min(self._first, sig.ts), max(self._last, sig.ts)
        else:
            self._first = self._last = sig.ts
        self.events.append(sig.fields())
        ids.add(sig.event_id)
        self._services.add(sig.service)
        return True

    def service_count(self) -> int:
        """How many services the chain spans so far."""
        self._index()
        return len(self._services)

    def ordered(self) -> list[Signal]:
        """Earliest first; among equal times the deepest span (the callee that failed first) first."""
        sigs = self.signals()
        parent_of = {s.span_id: s.parent_span_id for s in sigs if s.span_id}

        def depth(span: str | None) -> int:
            d, seen = 0, set()
            while span in parent_of and span not in seen:
                seen.add(span)
                span = parent_of[span]
                d += 1
            return d

        return sorted(sigs, key=lambda s: (s.ts, -depth(s.span_id), s.received))

    def services(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.ordered():
            seen.setdefault(s.service, None)
        return list(seen)

    def record(self, now: datetime | None = None) -> ErrorChain:
        sigs = self.ordered()
        root = sigs[0]
        return ErrorChain(
            trace_id=self.trace_id, root_event_id=uuid.UUID(root.event_id), root_service=root.service,
            root_fingerprint=root.fingerprint, root_title=root.title[:400], started_at=utc(root.ts),
            ended_at=utc(max(s.ts for s in sigs)), services=self.services(), event_count=len(sigs),
            events=[ChainEvent(event_id=uuid.UUID(s.event_id), service=s.service, fingerprint=s.fingerprint, title=s.title[:400],
                               timestamp=utc(s.ts)) for s in sigs],
            updated_at=now or datetime.now(UTC),
        )

    def alert(self, chain: ErrorChain) -> AlertEvent:
        sigs = self.ordered()
        root = sigs[0]
        path = " → ".join(chain.services)
        return make_alert(
            "error_chain", "critical" if len(chain.services) >= 3 else "error", f"error_chain:{self.trace_id}",
            (self.trace_id,), max(sigs, key=lambda s: s.received),
            f"Error chain across {len(chain.services)} services from {root.service}: {root.title}",
            f"trace {self.trace_id}: {path}; {chain.event_count} errors in "
            f"{(chain.ended_at - chain.started_at).total_seconds():.3f} s",
            service=root.service, fingerprint=root.fingerprint,
            details={"trace_id": self.trace_id, "services": chain.services, "root_event_id": str(root.event_id),
                     "event_count": chain.event_count},
        )
