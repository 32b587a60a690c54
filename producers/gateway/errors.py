"""The one way the gateway refuses a request: an HTTP status, a reason for humans and one for counters."""

from __future__ import annotations


class Rejected(Exception):
    def __init__(self, status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason  # short and stable: the counter label
        self.detail = detail  # what the client reads in {"detail": ...}
        self.headers = headers or {}
