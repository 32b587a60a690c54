"""Times as ClickHouse returns them, and the opaque cursors of the stream's pages."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from reports.issue_queries.models import BadQuery


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ts(value: datetime) -> datetime:
    """A ClickHouse time (naive UTC from clickhouse-connect) as an aware UTC datetime."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def encode_cursor(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=")


def decode_cursor(text: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadQuery("cursor is not one this API returned") from None
    if not isinstance(doc, dict):
        raise BadQuery("cursor is not one this API returned")
    return doc
