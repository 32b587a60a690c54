"""Processed events → ClickHouse rows, total: a record becomes rows the columns hold, or a dead letter.

The processed topic is written only by our worker, so the sink reads it with
orjson rather than re-validating it with pydantic: the sink's budget goes to
batching, not parsing. It still checks every value that clickhouse-connect
serialises on the client against its column (timestamps within DateTime's
range, the level within the Enum, strings that are strings, a sample rate a
Float32 holds), because a value outside a column's range fails the client's
serialisation of the whole batch, before anything reaches ClickHouse — and a
batch that cannot be written stops its partition. ``prepare_record`` turns
one Kafka record into a ``PreparedRecord`` (its ``error_events`` row, when
stored, and its contribution to the minute counts) or a ``DeadLetter`` with
stage ``rows`` and the reason; it never raises.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from schemas.dead_letter import DeadLetter
from schemas.events import LEVELS
from schemas.limits import MAX_TIMESTAMP, MIN_TIMESTAMP

EVENT_COLUMNS = [
    "event_id", "timestamp", "received_at", "service", "environment", "release", "level", "fingerprint",
    "exception_type", "title", "culprit", "message", "logger", "platform", "server_name", "user_id",
    "user_hash", "tags", "trace_id", "span_id", "correlation_id", "request_method", "request_url",
    "in_app_frames", "exceptions", "breadcrumbs", "context", "sample_rate", "original_timestamp",
    "grouping_rules", "request_query_string", "request_headers", "user_username", "user_ip", "recovery", "resources",
]
OCCURRENCE_COLUMNS = [
    "minute", "service", "environment", "fingerprint", "level", "events", "stored", "user_hashes",
    "first_seen", "last_seen", "exception_type", "title", "culprit", "releases", "release", "first_title",
]
RECOVERY_COLUMNS = [
    "minute", "service", "environment", "fingerprint", "method", "episodes", "attempted", "successful", "attempts",
    "durations_ms",
]
_LEVELS = frozenset(LEVELS)
_UINT32 = 2**32 - 1
_UINT64 = 2**64 - 1


class RowError(ValueError):
    """A processed record whose values the ClickHouse columns cannot hold."""


def _str(value: Any, name: str) -> str:
    if value is None:
        return ""
    if type(value) is not str:
        raise RowError(f"{name} must be a string, not {type(value).__name__}")
    return value


def _obj(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise RowError(f"{name} must be an object, not {type(value).__name__}")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise RowError(f"{name} must be a list, not {type(value).__name__}")
    return value


def _ts(value: Any, name: str = "timestamp") -> datetime:
    """An aware UTC datetime within what every timestamp column holds (DateTime is the narrowest)."""
    ts = datetime.fromisoformat(_str(value, name))
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if not MIN_TIMESTAMP <= ts <= MAX_TIMESTAMP:
        raise RowError(f"{name} {value} is outside {MIN_TIMESTAMP:%Y-%m-%d}..{MAX_TIMESTAMP:%Y-%m-%d}")
    return ts


def _level(value: Any) -> str:
    if value not in _LEVELS:
        raise RowError(f"level {str(value)[:40]!r} is not one of {LEVELS}")
    return str(value)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode() if value else ""


def user_hash(user: dict[str, Any] | None) -> int:
    """A stable 64-bit id for distinct-user counts; 0 means unknown."""
    if not user:
        return 0
    key = user.get("id") or user.get("email") or user.get("username") or user.get("ip_address")
    if not key:
        return 0
    return int.from_bytes(hashlib.blake2b(str(key).encode(), digest_size=8).digest(), "little") or 1


def event_row(p: dict[str, Any]) -> list[Any]:
    """The ``error_events`` row (``EVENT_COLUMNS``); raises ``RowError`` (or KeyError/TypeError/ValueError)."""
    e = _obj(p["event"], "event")
    user = _obj(e.get("user"), "user")
    request = _obj(e.get("request"), "request")
    tags = _obj(e.get("tags"), "tags")
    for k, v in tags.items():
        _str(v, f"tag {k[:40]!r}")
    frames = [
        f"{f.get('module') or f.get('filename') or '?'}.{f.get('function') or '?'}"
        for exc in _list(e.get("exceptions"), "exceptions")
        for f in _list(_obj(exc, "exception").get("stacktrace"), "stacktrace")
        if _obj(f, "frame").get("in_app")
    ]
    rate = p.get("sample_rate", 1.0)
    if type(rate) not in (int, float) or not (0.0 < rate <= 1.0):  # NaN fails the comparison too
        raise RowError(f"sample_rate {str(rate)[:40]} is not within (0, 1]")
    return [
        uuid.UUID(_str(e["event_id"], "event_id")),
        _ts(e["timestamp"]),
        _ts(p["received_at"], "received_at"),
        _str(e["service"], "service"),
        _str(e.get("environment"), "environment"),
        _str(e.get("release"), "release"),
        _level(e["level"]),
        _str(p["fingerprint"], "fingerprint"),
        _str(p.get("exception_type"), "exception_type"),
        _str(p.get("title"), "title"),
        _str(p.get("culprit"), "culprit"),
        _str(e.get("message"), "message"),
        _str(e.get("logger"), "logger"),
        _str(e.get("platform"), "platform"),
        _str(e.get("server_name"), "server_name"),
        _str(user.get("id"), "user.id"),
        user_hash(user),
        tags,
        _str(e.get("trace_id"), "trace_id"),
        _str(e.get("span_id"), "span_id"),
        _str(e.get("correlation_id"), "correlation_id"),
        _str(request.get("method"), "request.method"),
        _str(request.get("url"), "request.url"),
        frames,
        _json(e.get("exceptions")),
        _json(e.get("breadcrumbs")),
        _json(e.get("context")),
        float(rate),
        _str(p.get("original_timestamp"), "original_timestamp"),
        _str(p.get("grouping_rules"), "grouping_rules"),
        _str(request.get("query_string"), "request.query_string"),
        _str_map(request.get("headers"), "request.headers"),
        _str(user.get("username"), "user.username"),
        _str(user.get("ip_address"), "user.ip_address"),
        _json(e.get("recovery")),
        _json(e.get("resources")),
    ]


def _str_map(value: Any, what: str) -> dict[str, str]:
    """A Map(String, String) column: every key and value a storable string."""
    m = _obj(value, what)
    return {_str(k, f"{what} key"): _str(v, f"{what}[{str(k)[:40]!r}]") for k, v in m.items()}


def _uint(value: Any, name: str, high: int) -> int:
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= high:
        raise RowError(f"{name} {str(value)[:40]} is not an integer within 0..{high}")
    return value


def _bool(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise RowError(f"{name} must be true or false, not {str(value)[:40]}")
    return value


@dataclass(slots=True)
class RecoveryFacts:
    """An event's ``recovery`` as the count columns hold it."""

    method: str
    attempted: bool
    successful: bool
    attempts: int
    duration_ms: int | None


def recovery_facts(value: Any) -> RecoveryFacts | None:
    """``None`` for an event without ``recovery`` (the common case: one dict look-up upstream)."""
    if value is None:
        return None
    r = _obj(value, "recovery")
    duration = r.get("duration_ms")
    return RecoveryFacts(
        method=_str(r.get("method"), "recovery.method") or "retry",
        attempted=_bool(r.get("attempted", True), "recovery.attempted"),
        successful=_bool(r.get("successful", False), "recovery.successful"),
        attempts=_uint(r.get("attempts"), "recovery.attempts", _UINT64),
        duration_ms=None if duration is None else _uint(duration, "recovery.duration_ms", _UINT32),
    )


@dataclass(slots=True)
class Occurrence:
    """One processed event's part in ``error_occurrences_in`` (stored or sampled away)."""

    key: tuple[datetime, str, str, str, str]  # minute, service, environment, fingerprint, level
    ts: datetime
    stored: bool
    user_hash: int
    exception_type: str
    title: str
    culprit: str
    release: str
    recovery: RecoveryFacts | None = None


def occurrence(p: dict[str, Any]) -> Occurrence:
    """Raises ``RowError`` (or KeyError/TypeError/ValueError) for a record the count tables cannot hold."""
    e = _obj(p["event"], "event")
    ts = _ts(e["timestamp"])
    key = (ts.replace(second=0, microsecond=0), _str(e["service"], "service"),
           _str(e.get("environment"), "environment"), _str(p["fingerprint"], "fingerprint"), _level(e["level"]))
    return Occurrence(
        key=key, ts=ts, stored=bool(p.get("stored", True)), user_hash=user_hash(_obj(e.get("user"), "user")),
        exception_type=_str(p.get("exception_type"), "exception_type"), title=_str(p.get("title"), "title"),
        culprit=_str(p.get("culprit"), "culprit"), release=_str(e.get("release"), "release"),
        recovery=recovery_facts(e.get("recovery")),
    )


class _CountedEvent(msgspec.Struct):
    """The event fields ``occurrence`` reads; untyped, so ``occurrence`` checks them as it does a full record."""

    event_id: Any = msgspec.UNSET
    timestamp: Any = msgspec.UNSET
    service: Any = msgspec.UNSET
    level: Any = msgspec.UNSET
    environment: Any = msgspec.UNSET
    user: Any = msgspec.UNSET
    release: Any = msgspec.UNSET
    recovery: Any = msgspec.UNSET


class _Counted(msgspec.Struct):
    event: _CountedEvent
    fingerprint: Any = msgspec.UNSET
    stored: Any = True
    exception_type: Any = msgspec.UNSET
    title: Any = msgspec.UNSET
    culprit: Any = msgspec.UNSET


_COUNTED = msgspec.json.Decoder(_Counted)
_REQUIRED = ("event_id", "timestamp", "service", "level")


def counted_only(raw: bytes) -> dict[str, Any] | None:
    """A processed record that is counted but not stored, as a dict of only what the counts read; else None.

    Under load most events are sampled away or rate limited, and the counts need a dozen of a record's fields:
    msgspec skips the rest (frames, breadcrumbs, context) without building them, at about half the CPU of a
    full parse. None — a stored event, or anything unusual (a missing field, a wrong shape, bad JSON) — means
    "parse the whole record", so every check and dead letter stays that path's.
    """
    try:
        c = _COUNTED.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    if c.stored or c.fingerprint is msgspec.UNSET:
        return None
    e = c.event
    event = {f: v for f in _CountedEvent.__struct_fields__ if (v := getattr(e, f)) is not msgspec.UNSET}
    if any(f not in event for f in _REQUIRED):
        return None
    record = {f: v for f in _Counted.__struct_fields__ if (v := getattr(c, f)) is not msgspec.UNSET}
    record["event"] = event
    return record


@dataclass(slots=True)
class PreparedRecord:
    event_id: str
    event_row: list[Any] | None  # None: counted, not stored (sampled away or rate limited)
    occurrence: Occurrence


def prepare(p: dict[str, Any]) -> PreparedRecord:
    """Rows of one processed event; raises for a record the tables cannot hold."""
    o = occurrence(p)
    return PreparedRecord(p["event"]["event_id"], event_row(p) if o.stored else None, o)


def prepare_record(raw: bytes | None, *, source_topic: str, partition: int | None = None,
                   offset: int | None = None) -> PreparedRecord | DeadLetter:
    """One record of the processed topic → its rows, or a dead letter (stage ``rows``); never raises."""
    try:
        p = counted_only(raw or b"") or orjson.loads(raw or b"")
        if type(p) is not dict:
            raise RowError(f"a processed event must be a JSON object, not {type(p).__name__}")
        return prepare(p)
    except orjson.JSONDecodeError as exc:
        reason, detail = "invalid_json", f"sink could not read record: {exc}"
    except (RowError, KeyError, TypeError, ValueError, AttributeError) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        reason, detail = "invalid_event", f"the tables cannot hold this record: {what}"
    except Exception as exc:  # noqa: BLE001 - one record must never stop the partition
        reason, detail = "processing_error", f"{type(exc).__name__}: {exc}"
    return DeadLetter.for_payload(raw or b"", stage="rows", reason=reason,  # type: ignore[arg-type]
                                  detail=detail[:4_000], source_topic=source_topic, partition=partition,
                                  offset=offset)


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
    first_title: str = ""  # the title of the cell's earliest event: the title (one that does not change)
    releases: set[str] = field(default_factory=set)


@dataclass
class MinuteCounts:
    """True counts per (minute, service, environment, fingerprint, level) for one batch.

    Besides the counts, each cell carries what ``error_groups`` needs about the
    issue (exact first/last time, first and latest title, releases), because only this
    insert sees every event — stored or sampled away.
    """

    # the key ends with the release: true error counts per release are the numerator of release health
    cells: dict[tuple[datetime, str, str, str, str, str], _Cell] = field(default_factory=dict)

    def add(self, p: dict[str, Any]) -> None:
        """A processed event as a dict; raises for one the tables cannot hold (see ``prepare_record``)."""
        self.add_occurrence(occurrence(p))

    def add_occurrence(self, o: Occurrence) -> None:
        key = (*o.key, o.release)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = _Cell()
        cell.events += 1
        cell.stored += 1 if o.stored else 0
        if o.user_hash:
            cell.users.add(o.user_hash)
        ts = o.ts
        if cell.first_seen is None or ts < cell.first_seen or (ts == cell.first_seen and o.title < cell.first_title):
            cell.first_seen = ts
            cell.first_title = o.title
        if cell.last_seen is None or ts >= cell.last_seen:
            cell.last_seen = ts
            cell.exception_type = o.exception_type or cell.exception_type
            cell.title = o.title or cell.title
            cell.culprit = o.culprit or cell.culprit
        if o.release:
            cell.releases.add(o.release)

    def rows(self) -> list[list[Any]]:
        return [
            [*key[:5], c.events, c.stored, sorted(c.users), c.first_seen, c.last_seen,
             c.exception_type, c.title, c.culprit, sorted(c.releases), key[5], c.first_title]
            for key, c in self.cells.items()
        ]


@dataclass
class _RecoveryCell:
    episodes: int = 0
    attempted: int = 0
    successful: int = 0
    attempts: int = 0
    recovery_ms: list[int] = field(default_factory=list)


@dataclass
class RecoveryCounts:
    """Exact recovery counts per (minute, service, environment, fingerprint, method) for one batch.

    Like ``MinuteCounts`` it sees every processed event, stored or sampled away; events without
    ``recovery`` add nothing. ``recovery_ms`` holds the durations of the episodes that recovered.
    """

    cells: dict[tuple[datetime, str, str, str, str], _RecoveryCell] = field(default_factory=dict)

    def add_occurrence(self, o: Occurrence) -> None:
        r = o.recovery
        if r is None:
            return
        key = (*o.key[:4], r.method)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = _RecoveryCell()
        cell.episodes += 1
        cell.attempted += r.attempted
        cell.successful += r.successful
        cell.attempts += r.attempts
        if r.successful and r.duration_ms is not None:
            cell.recovery_ms.append(r.duration_ms)

    def rows(self) -> list[list[Any]]:
        return [[*key, c.episodes, c.attempted, c.successful, c.attempts, c.recovery_ms]
                for key, c in self.cells.items()]
