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
    "request_query_string", "request_headers", "user_username", "user_ip",
]
OCCURRENCE_COLUMNS = [
    "minute", "service", "environment", "fingerprint", "level", "events", "stored", "user_hashes",
    "first_seen", "last_seen", "exception_type", "title", "culprit", "releases",
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
        request.get("query_string") or "",
        request.get("headers") or {},
        user.get("username") or "",
        user.get("ip_address") or "",
    ]


@dataclass
class _Cell:
    events: int = 0
    stored: int = 0
    users: set[int] = field(default_factory=set)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    exception_type: str = ""
    title: str = ""
    culprit: str = ""
    releases: set[str] = field(default_factory=set)


@dataclass
class MinuteCounts:
    """True counts per (minute, service, environment, fingerprint, level) for one batch.

    Besides the counts, each cell carries what ``error_groups`` needs about the
    issue (exact first/last time, latest title, releases), because only this
    insert sees every event — stored or sampled away.
    """

    cells: dict[tuple[datetime, str, str, str, str], _Cell] = field(default_factory=dict)

    def add(self, p: dict[str, Any]) -> None:
        e = p["event"]
        ts = _ts(e["timestamp"])
        minute = ts.replace(second=0, microsecond=0)
        key = (minute, e["service"], e.get("environment") or "", p["fingerprint"], e["level"])
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = _Cell()
        cell.events += 1
        cell.stored += 1 if p.get("stored", True) else 0
        uh = user_hash(e.get("user"))
        if uh:
            cell.users.add(uh)
        if cell.first_seen is None or ts < cell.first_seen:
            cell.first_seen = ts
        if cell.last_seen is None or ts >= cell.last_seen:
            cell.last_seen = ts
            cell.exception_type = p.get("exception_type") or cell.exception_type
            cell.title = p.get("title") or cell.title
            cell.culprit = p.get("culprit") or cell.culprit
        if e.get("release"):
            cell.releases.add(e["release"])

    def rows(self) -> list[list[Any]]:
        return [
            [*key, c.events, c.stored, sorted(c.users), c.first_seen, c.last_seen,
             c.exception_type, c.title, c.culprit, sorted(c.releases)]
            for key, c in self.cells.items()
        ]
