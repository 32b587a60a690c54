"""What the worker hands to the sinks: a validated, scrubbed, fingerprinted event.

Every valid event is forwarded, stored or not, because ``error_counts_1m``
holds true counts: sampling and rate limits decide whether the raw event is
stored (``stored``), never whether it is counted.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from schemas.events import ErrorEvent


class ProcessedEvent(BaseModel):
    event: ErrorEvent
    fingerprint: str = Field(pattern=r"^[0-9a-f]{32}$", description="128-bit group key, hex")
    title: str = Field(max_length=400, description="e.g. \"KeyError: 'user_id'\"")
    culprit: str = Field(default="", max_length=400, description="e.g. 'billing.charge in process'")
    exception_type: str = ""
    sample_rate: float = Field(default=1.0, gt=0.0, le=1.0)
    stored: bool = True
    drop_reason: str | None = Field(default=None, description="why the raw event is not stored")
    received_at: datetime
    grouping_rules: str = Field(default="", max_length=64,
                                description="version of the server-side grouping rules applied ('' for none)")
