"""What the worker hands to the sinks: a validated, scrubbed, fingerprinted event.

Every valid event is forwarded, stored or not, because ``error_counts_1m``
holds true counts: sampling and rate limits decide whether the raw event is
stored (``stored``), never whether it is counted.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from schemas.events import ErrorEvent
from schemas.limits import MAX_TIMESTAMP, MIN_TIMESTAMP


def _storable(name: str, value: datetime) -> None:
    if value.tzinfo is None or not MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:
        raise ValueError(f"{name} {value.isoformat()} is outside what the tables hold "
                         f"({MIN_TIMESTAMP.isoformat()}..{MAX_TIMESTAMP.isoformat()})")


class ProcessedEvent(BaseModel):
    event: ErrorEvent
    fingerprint: str = Field(pattern=r"^[0-9a-f]{32}$", description="128-bit group key, hex")
    title: str = Field(max_length=400, description="e.g. \"KeyError: 'user_id'\"")
    culprit: str = Field(default="", max_length=400, description="e.g. 'billing.charge in process'")
    exception_type: str = ""
    sample_rate: float = Field(default=1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    stored: bool = True
    drop_reason: str | None = Field(default=None, description="why the raw event is not stored")
    received_at: datetime
    grouping_rules: str = Field(default="", max_length=64,
                                description="version of the server-side grouping rules applied ('' for none)")
    grouping_version: int = Field(default=1, ge=1, description="the grouping version that made the fingerprint")
    previous_fingerprint: str = Field(
        default="", pattern=r"^(?:[0-9a-f]{32})?$",
        description="during a grouping upgrade, the previous version's fingerprint when it differs ('' otherwise)",
    )
    original_timestamp: datetime | None = Field(
        default=None,
        description="the event's own timestamp when it was outside the accepted window; event.timestamp "
                    "then holds received_at",
    )

    @model_validator(mode="after")
    def _timestamps_storable(self) -> ProcessedEvent:
        """What the worker hands over, the tables hold: ``event.timestamp`` becomes a DateTime minute."""
        _storable("event.timestamp", self.event.timestamp)
        _storable("received_at", self.received_at)
        return self
