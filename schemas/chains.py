"""Cross-service error chains, published by the worker on ``{app_id}-chains``.

A chain is every error that shares one ``trace_id`` within a short window, across
services. The worker re-publishes a chain each time it grows (same ``trace_id``,
later ``updated_at``), so the sink's ReplacingMergeTree keeps the latest version.
Field names match the ClickHouse table ``error_chains`` one to one (the nested
``events`` column is the list of ``ChainEvent``) so a sink maps it without a
translation table.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, Field


class ChainEvent(BaseModel):
    event_id: uuid.UUID
    service: str
    fingerprint: str
    title: str = Field(default="", max_length=400)
    timestamp: datetime


class ErrorChain(BaseModel):
    trace_id: str
    root_event_id: uuid.UUID
    root_service: str
    root_fingerprint: str
    root_title: str = Field(default="", max_length=400)
    started_at: datetime
    ended_at: datetime
    services: list[str] = Field(description="distinct services, in order of first error")
    event_count: int = Field(ge=1)
    events: list[ChainEvent] = Field(description="ordered by timestamp; root first")
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
