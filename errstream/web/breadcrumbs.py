"""Breadcrumb times as a reader wants them: the time of day and how long before the event it was.

SDKs send a breadcrumb's timestamp as epoch seconds (a number or a numeric string) or as ISO 8601;
the page showed it raw ("1733580000.123"). A value that is neither is shown as sent, cut short.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except (OverflowError, OSError, ValueError):
            pass
        try:
            t = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def crumb_time(value: Any, event_time: datetime) -> str:
    """``14:03:07.412 (−2.3 s)``: the breadcrumb's time and its distance to the event."""
    t = parse(value)
    if t is None:
        return str(value or "")[:40]
    delta = (t - event_time).total_seconds()
    return f"{t:%H:%M:%S}.{t.microsecond // 1000:03d} ({'−' if delta < 0 else '+'}{abs(delta):.1f} s)"
