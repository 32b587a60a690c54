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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from schemas.alerts import AlertEvent, AlertKind, Severity

SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2, "critical": 3}


class WebhookDestination(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)  # a rejected URL may still carry a token

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: SecretStr
    kind: Literal["generic", "slack", "teams", "pagerduty", "sms"] = "generic"
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
    routing_key: SecretStr | None = Field(default=None, description="pagerduty: the Events API v2 integration key")
    form: dict[str, str] = Field(default_factory=dict,
                                 description="sms: fixed form fields sent with the text, e.g. Twilio's To and From")
    sms_text_field: str = Field(default="Body", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                description="sms: the form field that carries the text (Twilio: Body)")

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

    @model_validator(mode="after")
    def _kind_needs(self) -> WebhookDestination:
        if self.kind == "pagerduty" and self.routing_key is None:
            raise ValueError("a pagerduty destination needs routing_key (its Events API v2 integration key)")
        return self

    def accepts(self, alert: AlertEvent) -> bool:
        return _accepts(self.min_severity, self.kinds, alert)

    def redact(self, text: str) -> str:
        """An error text without this URL's path (a library may quote it) nor any URL's path or query."""
        path = urlsplit(self.url.get_secret_value()).path
        if len(path) > 1:
            text = text.replace(path, "/…")
        return _URL.sub(lambda m: host_only(m.group(0)), text)


def _accepts(min_severity: Severity, kinds: list[AlertKind], alert: AlertEvent) -> bool:
    if SEVERITY_RANK[alert.severity] < SEVERITY_RANK[min_severity]:
        return False
    return not kinds or alert.kind in kinds


class EmailDestination(BaseModel):
    """Alert e-mails over SMTP (``ERRSTREAM_ALERT_EMAILS``), with the webhooks' rate limit and retries."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a rejected entry may carry a password

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["email"] = "email"
    smtp_host: str = Field(min_length=1, max_length=253)
    smtp_port: int = Field(default=587, ge=1, le=65_535)
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (port 587), tls (implicit, port 465) or none (local relays only)")
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(min_length=3, max_length=320, description="From address")
    recipients: list[str] = Field(min_length=1, max_length=100)
    min_severity: Severity = "warning"
    kinds: list[AlertKind] = Field(default_factory=list, description="alert kinds to send; empty = all")
    rate_limit_per_minute: float = Field(default=10, gt=0)
    rate_limit_burst: int | None = Field(default=None, ge=1)
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_initial_seconds: float = Field(default=2.0, ge=0)
    backoff_max_seconds: float = Field(default=120.0, ge=0)
    max_retry_after_seconds: float = Field(default=300.0, ge=0)
    timeout_seconds: float = Field(default=20.0, gt=0)
    ca_file: str | None = Field(default=None, description="CA bundle for the server's certificate (default: system)")

    @field_validator("sender", "recipients")
    @classmethod
    def _addresses(cls, value: str | list[str]) -> str | list[str]:
        for address in [value] if isinstance(value, str) else value:
            if "@" not in address or any(c in address for c in "\r\n<>,"):
                raise ValueError(f"not an e-mail address: {address[:80]!r}")
        return value

    @property
    def redacted_url(self) -> str:
        return f"smtp://{self.smtp_host}:{self.smtp_port}"

    def accepts(self, alert: AlertEvent) -> bool:
        return _accepts(self.min_severity, self.kinds, alert)

    def redact(self, text: str) -> str:
        secret = self.password.get_secret_value() if self.password else ""
        return text.replace(secret, "[Filtered]") if secret else text


_URL = re.compile(r"https?://[^\s'\"<>]+")


def host_only(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"
