"""Cross-service error chains as the worker publishes them and ClickHouse stores them.

One record per trace id, re-published as the chain grows; the ``error_chains``
table (ReplacingMergeTree(updated_at) by trace_id) keeps the latest version.
Fields mirror the table's columns one to one.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class ChainEvent(BaseModel):
    event_id: uuid.UUID
    service: str
    fingerprint: str
    title: str
    timestamp: datetime


class ErrorChain(BaseModel):
    trace_id: str = Field(min_length=1, max_length=200)
    root_event_id: uuid.UUID
    root_service: str
    root_fingerprint: str
    root_title: str
    started_at: datetime
    ended_at: datetime
    services: list[str]
    event_count: int = Field(ge=0)
    events: list[ChainEvent]
    updated_at: datetime
