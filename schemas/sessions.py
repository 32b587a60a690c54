"""Release health: per-minute session (or request) counts, the denominator of error rates.

One record on the sessions topic is one ``SessionAggregate``: how many sessions (for a server: requests)
started in one minute for one service, environment and release, how many of them errored, crashed or
ended abnormally, and hashes of the sessions and users behind the errors, so that ClickHouse can count
distinct errored sessions and crash-free users even when several updates of one session arrive.

Sentry SDKs send ``session`` items (one session's updates) and ``sessions`` items (pre-aggregated
counts); the gateway turns both into aggregates. errstream's own middleware counts requests.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

MAX_HASHES = 10_000
Hash = Annotated[int, Field(ge=0, lt=2**64)]  # ClickHouse UInt64


class SessionAggregate(BaseModel):
    aggregate_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="idempotency: a replay inserts once")
    service: str = Field(min_length=1, max_length=200)
    environment: str = Field(default="production", max_length=200)
    release: str = Field(default="", max_length=200)
    minute: datetime = Field(description="start of the minute the sessions started in (UTC)")
    started: int = Field(default=0, ge=0, le=10**12, description="sessions or requests started")
    errored: int = Field(default=0, ge=0, le=10**12, description="sessions counted errored by an aggregate")
    crashed: int = Field(default=0, ge=0, le=10**12, description="sessions counted crashed by an aggregate")
    abnormal: int = Field(default=0, ge=0, le=10**12)
    errored_session_hashes: list[Hash] = Field(default_factory=list, max_length=MAX_HASHES)
    crashed_session_hashes: list[Hash] = Field(default_factory=list, max_length=MAX_HASHES)
    user_hashes: list[Hash] = Field(default_factory=list, max_length=MAX_HASHES)
    crashed_user_hashes: list[Hash] = Field(default_factory=list, max_length=MAX_HASHES)
