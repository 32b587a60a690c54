"""Counting sessions and requests per minute, in the app and at the gateway, for error rates.

``SessionCounter`` adds outcomes under a lock (no I/O on the caller's thread) and hands finished minutes
to a sender: the SDK's second Kafka transport (topic ``errstream-sessions``) or the gateway's publisher.
``from_sentry_session`` and ``from_sentry_aggregates`` read Sentry's ``session`` and ``sessions``
envelope items.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.sessions import MAX_HASHES, SessionAggregate

FLUSH_EVERY_SECONDS = 10.0


def stable_hash(value: str) -> int:
    """A 63-bit id (fits ClickHouse UInt64 and JSON integers everywhere)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little") >> 1 or 1


def minute_of(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.replace(second=0, microsecond=0)


@dataclass
class _Cell:
    started: int = 0
    errored: int = 0  # a request is its own session: counts, no ids to deduplicate
    crashed: int = 0
    users: set[int] = field(default_factory=set)
    crashed_users: set[int] = field(default_factory=set)


class SessionCounter:
    """Thread-safe per-minute counts for one service; ``sender`` gets each finished aggregate."""

    def __init__(self, service: str, environment: str, release: str | None,
                 sender: Callable[[SessionAggregate], None]) -> None:
        self.service, self.environment, self.release = service, environment, release or ""
        self.sender = sender
        self._cells: dict[datetime, _Cell] = {}
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def record(self, outcome: str, user: str | None = None, at: datetime | None = None) -> None:
        """``outcome``: ``ok``, ``errored`` (e.g. a 5xx or a handled error) or ``crashed`` (unhandled)."""
        minute = minute_of(at or datetime.now(UTC))
        with self._lock:
            cell = self._cells.get(minute)
            if cell is None:
                cell = self._cells[minute] = _Cell()
            cell.started += 1
            user_hash = stable_hash(user) if user else 0
            if user_hash:
                cell.users.add(user_hash)
            if outcome in ("errored", "crashed"):
                cell.errored += 1
            if outcome == "crashed":
                cell.crashed += 1
                if user_hash:
                    cell.crashed_users.add(user_hash)
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_SECONDS:
            self.flush(only_finished=True)

    def flush(self, only_finished: bool = False) -> int:
        """Send finished minutes (or all, at shutdown); returns how many aggregates were sent."""
        now_minute = minute_of(datetime.now(UTC))
        with self._lock:
            self._last_flush = time.monotonic()
            ready = [m for m in self._cells if not only_finished or m < now_minute]
            cells = [(m, self._cells.pop(m)) for m in sorted(ready)]
        for minute, cell in cells:
            self.sender(SessionAggregate(
                service=self.service, environment=self.environment, release=self.release, minute=minute,
                started=cell.started, errored=cell.errored, crashed=cell.crashed,
                user_hashes=sorted(cell.users)[:MAX_HASHES], crashed_user_hashes=sorted(cell.crashed_users)[:MAX_HASHES],
            ))
        return len(cells)


def _attrs(item: dict[str, Any]) -> tuple[str, str]:
    raw = item.get("attrs")
    attrs: dict[str, Any] = raw if isinstance(raw, dict) else {}
    release = str(attrs.get("release") or "")[:200]
    environment = str(attrs.get("environment") or "production")[:200]
    return release, environment


def _time(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            return minute_of(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    if isinstance(value, int | float) and 0 < value < 32_503_680_000:
        return minute_of(datetime.fromtimestamp(value, UTC))
    return None


def from_sentry_session(item: Any, service: str) -> SessionAggregate | None:
    """One update of one session (``session`` item): counted started on ``init``, errored/crashed by sid."""
    if not isinstance(item, dict):
        return None
    started = _time(item.get("started")) or _time(item.get("timestamp"))
    sid = str(item.get("sid") or "")
    if started is None or not sid:
        return None
    release, environment = _attrs(item)
    status = item.get("status")
    errors = item.get("errors")
    did = str(item.get("did") or "")
    errored = status in ("errored", "crashed", "abnormal") or (isinstance(errors, int) and errors > 0)
    user_hash = stable_hash(did) if did else 0
    return SessionAggregate(
        service=service, environment=environment, release=release, minute=started,
        started=1 if item.get("init") is True else 0,
        abnormal=1 if status == "abnormal" else 0,
        errored_session_hashes=[stable_hash(sid)] if errored else [],
        crashed_session_hashes=[stable_hash(sid)] if status == "crashed" else [],
        user_hashes=[user_hash] if user_hash and item.get("init") is True else [],
        crashed_user_hashes=[user_hash] if user_hash and status == "crashed" else [],
    )


def from_sentry_aggregates(item: Any, service: str) -> list[SessionAggregate]:
    """A ``sessions`` item: per-minute counts of exited, errored, abnormal and crashed sessions."""
    if not isinstance(item, dict) or not isinstance(item.get("aggregates"), list):
        return []
    release, environment = _attrs(item)
    out: list[SessionAggregate] = []
    for agg in item["aggregates"][:1000]:
        if not isinstance(agg, dict) or (minute := _time(agg.get("started"))) is None:
            continue
        counts = {k: agg.get(k, 0) for k in ("exited", "errored", "abnormal", "crashed")}
        if not all(isinstance(v, int) and 0 <= v <= 10**9 for v in counts.values()):
            continue
        did = str(agg.get("did") or "")
        user = [stable_hash(did)] if did else []
        out.append(SessionAggregate(
            service=service, environment=environment, release=release, minute=minute,
            started=sum(counts.values()), errored=counts["errored"] + counts["crashed"] + counts["abnormal"],
            crashed=counts["crashed"], abnormal=counts["abnormal"], user_hashes=user,
            crashed_user_hashes=user if counts["crashed"] else [],
        ))
    return out
