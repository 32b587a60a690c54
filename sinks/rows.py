"""Processed events → ClickHouse rows.

The processed topic is written only by our worker, so the sink reads it with
orjson and trusts its shape rather than re-validating with pydantic: the sink's
budget goes to batching, not parsing.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

EVENT_COLUMNS = [
    "event_id", "timestamp", "received_at", "service", "environment", "release", "level", "fingerprint",
    "exception_type", "title", "culprit", "message", "logger", "platform", "server_name", "user_id",
    "user_hash", "tags", "trace_id", "span_id", "correlation_id", "request_method", "request_url",
    "in_app_frames", "exceptions", "breadcrumbs", "context", "sample_rate",
]
OCCURRENCE_COLUMNS = [
    "minute", "service", "environment", "fingerprint", "level", "events", "stored", "user_hashes",
]


def user_hash(user: dict[str, Any] | None) -> int:
    """A stable 64-bit id for distinct-user counts; 0 means unknown."""
    if not user:
        return 0
    key = user.get("id") or user.get("email") or user.get("username") or user.get("ip_address")
    if not key:
        return 0
    return int.from_bytes(hashlib.blake2b(str(key).encode(), digest_size=8).digest(), "little") or 1


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode() if value else ""


def event_row(p: dict[str, Any]) -> list[Any]:
    e = p["event"]
    user = e.get("user") or {}
    request = e.get("request") or {}
    frames = [
        f"{f.get('module') or f.get('filename') or '?'}.{f.get('function') or '?'}"
        for exc in e.get("exceptions") or []
        for f in exc.get("stacktrace") or []
        if f.get("in_app")
    ]
    return [
        uuid.UUID(e["event_id"]),
        _ts(e["timestamp"]),
        _ts(p["received_at"]),
        e["service"],
        e.get("environment") or "",
        e.get("release") or "",
        e["level"],
        p["fingerprint"],
        p.get("exception_type") or "",
        p.get("title") or "",
        p.get("culprit") or "",
        e.get("message") or "",
        e.get("logger") or "",
        e.get("platform") or "",
        e.get("server_name") or "",
        user.get("id") or "",
        user_hash(user),
        e.get("tags") or {},
        e.get("trace_id") or "",
        e.get("span_id") or "",
        e.get("correlation_id") or "",
        request.get("method") or "",
        request.get("url") or "",
        frames,
        _json(e.get("exceptions")),
        _json(e.get("breadcrumbs")),
        _json(e.get("context")),
        float(p.get("sample_rate", 1.0)),
    ]


@dataclass
class MinuteCounts:
    """True counts per (minute, service, environment, fingerprint, level) for one batch."""

    cells: dict[tuple[datetime, str, str, str, str], list[Any]] = field(default_factory=dict)

    def add(self, p: dict[str, Any]) -> None:
        e = p["event"]
        ts = _ts(e["timestamp"])
        minute = ts.replace(second=0, microsecond=0)
        key = (minute, e["service"], e.get("environment") or "", p["fingerprint"], e["level"])
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = [0, 0, set()]
        cell[0] += 1
        cell[1] += 1 if p.get("stored", True) else 0
        uh = user_hash(e.get("user"))
        if uh:
            cell[2].add(uh)

    def rows(self) -> list[list[Any]]:
        return [[*key, c[0], c[1], sorted(c[2])] for key, c in self.cells.items()]
