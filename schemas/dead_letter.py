"""A record on ``errors.dlq``: input the worker or a sink refused, with the stage and the reason.

Bad input must never crash a worker nor disappear; the dead-letter record keeps
the original bytes (as text when they decode, base64 otherwise) next to a
reason a human can act on and the step that refused it (``stage``: the
worker's ``decode``, ``validate``, ``scrub``, ``fingerprint``, ``sample``,
``encode``, ``signals``; the ClickHouse sink's ``rows``).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

MAX_DLQ_PAYLOAD = 64_000


class ValidationProblem(BaseModel):
    loc: str
    msg: str


Reason = Literal["invalid_json", "invalid_event", "too_large", "processing_error", "unstorable"]


class DeadLetter(BaseModel):
    # processing_error: an unexpected exception while handling the record (a bug or a limit);
    # unstorable: ClickHouse (or its client) refused the record's row.
    stage: str = Field(default="validate", max_length=64,
                       description="the step that refused the record: decode, validate, scrub, fingerprint, "
                                   "encode, signals, produce, rows, sink-insert, …")
    reason: Reason
    detail: str = Field(max_length=4_000)
    problems: list[ValidationProblem] = Field(default_factory=list)
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    payload_size: int
    payload_truncated: bool = False
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    payload: str

    @classmethod
    def for_payload(
        cls,
        raw: bytes,
        *,
        reason: Reason,
        detail: str,
        source_topic: str,
        problems: list[ValidationProblem] | None = None,
        partition: int | None = None,
        offset: int | None = None,
        stage: str = "validate",
    ) -> DeadLetter:
        cut = raw[:MAX_DLQ_PAYLOAD]
        try:
            text, encoding = cut.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(cut).decode("ascii"), "base64"
        return cls(
            stage=stage,
            reason=reason,
            detail=detail[:4_000],
            problems=problems or [],
            source_topic=source_topic,
            source_partition=partition,
            source_offset=offset,
            payload_size=len(raw),
            payload_truncated=len(raw) > MAX_DLQ_PAYLOAD,
            payload_encoding=encoding,  # type: ignore[arg-type]
            payload=text,
        )
