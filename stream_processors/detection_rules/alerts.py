"""Building AlertEvents with deterministic identities.

``alert_id`` is a uuid5 of the alert's identity (kind, scope and, for alerts
that can recur, the window or resolution they belong to), and ``created_at`` is
the receive time of the triggering event: an alert re-emitted after a crash is
byte-for-byte the same alert, so consumers and ClickHouse collapse it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas.alerts import ALERT_NAMESPACE, AlertEvent, AlertKind, Severity, alert_id
from stream_processors.detection_signals import Signal

__all__ = ["ALERT_NAMESPACE", "alert_id", "make_alert"]


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def human_utc(when: float | str | datetime) -> str:
    """A time as people read it in an alert's message: ``2026-11-30 14:03:07 UTC``.

    ``details`` keep ISO 8601 for programs; messages go to Slack, terminals and reports.
    """
    if isinstance(when, int | float):
        dt = utc(when)
    elif isinstance(when, str):
        try:
            dt = datetime.fromisoformat(when)
        except ValueError:
            return when
    else:
        dt = when
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return f"{dt:%Y-%m-%d %H:%M:%S} UTC"


def make_alert(
    kind: AlertKind, severity: Severity, dedup_key: str, identity: tuple[object, ...], trigger: Signal,
    title: str, message: str = "", *, service: str | None = None, fingerprint: str | None = None,
    details: dict[str, Any] | None = None,
) -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id(kind, dedup_key, *identity),
        kind=kind, severity=severity, dedup_key=dedup_key[:400], created_at=utc(trigger.received),
        service=service or trigger.service, fingerprint=fingerprint, title=title[:400], message=message[:4000],
        trigger_event_id=uuid.UUID(trigger.event_id), trigger_event_time=utc(trigger.ts), details=details or {},
    )
