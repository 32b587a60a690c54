"""Webhook destinations for alert notifications (``ERRSTREAM_ALERT_WEBHOOKS``).

The configuration is a JSON list so one environment variable (or secret)
describes every destination. Webhook URLs usually embed a token (Slack's do),
so the URL is a ``SecretStr``: it never appears in reprs, logs or delivery
records — only ``redacted_url`` (scheme and host) does.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from schemas.alerts import AlertEvent, AlertKind, Severity

SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2, "critical": 3}


class WebhookDestination(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)  # a rejected URL may still carry a token

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: SecretStr
    kind: Literal["generic", "slack"] = "generic"
    min_severity: Severity = "info"
    kinds: list[AlertKind] = Field(default_factory=list, description="alert kinds to send; empty = all")
    rate_limit_per_minute: float = Field(default=30, gt=0)
    rate_limit_burst: int | None = Field(default=None, ge=1, description="bucket size; default = one minute's rate")
    max_attempts: int = Field(default=6, ge=1, le=20)
    backoff_initial_seconds: float = Field(default=1.0, ge=0)
    backoff_max_seconds: float = Field(default=60.0, ge=0)
    max_retry_after_seconds: float = Field(default=300.0, ge=0, description="cap on a receiver's Retry-After")
    timeout_seconds: float = Field(default=10.0, gt=0)
    secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key for X-Errstream-Signature")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="extra headers, e.g. Authorization")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # Do not echo the value: it may carry a token.
            raise ValueError("url must be an absolute http(s) URL")
        return value

    @property
    def redacted_url(self) -> str:
        """Scheme, host and port only: paths and query strings of webhooks carry tokens."""
        return host_only(self.url.get_secret_value())

    def accepts(self, alert: AlertEvent) -> bool:
        if SEVERITY_RANK[alert.severity] < SEVERITY_RANK[self.min_severity]:
            return False
        return not self.kinds or alert.kind in self.kinds

    def redact(self, text: str) -> str:
        """An error text without this URL's path (a library may quote it) nor any URL's path or query."""
        path = urlsplit(self.url.get_secret_value()).path
        if len(path) > 1:
            text = text.replace(path, "/…")
        return _URL.sub(lambda m: host_only(m.group(0)), text)


_URL = re.compile(r"https?://[^\s'\"<>]+")


def host_only(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"
