"""Alert e-mails: a plain-text and an HTML body with what an engineer needs to decide, sent over SMTP.

The message carries the issue's title, culprit, true event count, users, first and last seen and a
link to the issue page (``ERRSTREAM_WEB_BASE_URL``). ``Message-ID`` is derived from the alert id, so a
re-sent alert (a retry after a lost answer, a replay) is the same message to every mail system that
deduplicates by it. Sending uses aiosmtplib: STARTTLS or implicit TLS with certificate checks, and
AUTH only over an encrypted connection unless the destination says ``security: none``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from html import escape

import aiosmtplib

from schemas.alerts import AlertEvent
from schemas.notifications import EmailDestination
from sinks.delivery.alert_text import one_line
from sinks.delivery.http_channels import KIND_LABEL, short_text

SEVERITY_COLOUR = {"info": "#2563eb", "warning": "#d97706", "error": "#dc2626", "critical": "#7f1d1d"}


@dataclass(frozen=True)
class IssueFacts:
    """What ClickHouse knows of the alert's issue (true counts), for the message body."""

    culprit: str = ""
    events: int = 0
    users: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    status: str = ""


def _when(ts: datetime | None) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S} UTC" if ts else "—"


def issue_link(base_url: str, alert: AlertEvent) -> str:
    if not base_url or not alert.fingerprint:
        return ""
    return f"{base_url.rstrip('/')}/issues/{alert.fingerprint}"


def build_email(dest: EmailDestination, alert: AlertEvent, facts: IssueFacts | None, base_url: str = "",
                suppressed: int = 0) -> EmailMessage:
    facts = facts or IssueFacts()
    label = KIND_LABEL.get(alert.kind, alert.kind)
    link = issue_link(base_url, alert)
    rows = [
        ("Service", alert.service), ("Severity", alert.severity), ("Kind", label),
        ("Culprit", facts.culprit or "—"), ("Events", f"{facts.events:,}" if facts.events else "—"),
        ("Users", f"{facts.users:,}" if facts.users else "—"), ("First seen", _when(facts.first_seen)),
        ("Last seen", _when(facts.last_seen)), ("Issue", alert.fingerprint or "—"), ("Owner", alert.owner or "—"),
        ("Alert", f"{alert.alert_id} at {_when(alert.created_at)}"),
    ]
    if facts.status:
        rows.insert(4, ("Status", facts.status))
    message = alert.message or alert.title
    text = [f"{label}: {alert.title}", "", message, ""]
    text += [f"{name + ':':<12} {value}" for name, value in rows]
    if link:
        text += ["", f"Open the issue: {link}"]
    if suppressed:
        text += ["", f"{suppressed} earlier alert(s) to this address were held back by its rate limit."]
    table = "".join(f"<tr><th align='left' style='padding:2px 12px 2px 0'>{escape(n)}</th>"
                    f"<td>{escape(str(v))}</td></tr>" for n, v in rows)
    html = (
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<h2 style='color:{SEVERITY_COLOUR[alert.severity]};margin:0 0 8px'>{escape(label)}: {escape(alert.title)}</h2>"
        f"<p style='white-space:pre-wrap'>{escape(message)}</p><table>{table}</table>"
        + (f"<p><a href='{escape(link, quote=True)}'>Open the issue</a></p>" if link else "")
        + (f"<p><small>{suppressed} earlier alert(s) were held back by the rate limit.</small></p>"
           if suppressed else "")
        + "</body></html>"
    )
    msg = EmailMessage()
    msg["Subject"] = one_line(short_text(alert), 200)  # no CR/LF can reach a header: no injection, no crash
    msg["From"] = dest.sender
    msg["To"] = ", ".join(dest.recipients)
    msg["Date"] = formatdate(alert.created_at.timestamp(), usegmt=True)
    msg["Message-ID"] = f"<alert-{alert.alert_id}@errstream>"
    msg["X-Errstream-Alert-Kind"] = alert.kind
    msg["X-Errstream-Severity"] = alert.severity
    msg.set_content("\n".join(text))
    msg.add_alternative(html, subtype="html")
    return msg


def _tls_context(dest: EmailDestination) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=dest.ca_file) if dest.ca_file else ssl.create_default_context()


async def send_email(dest: EmailDestination, message: EmailMessage) -> None:
    """One SMTP session; raises aiosmtplib's errors (the notifier decides what is retried)."""
    security = dest.security
    await aiosmtplib.send(
        message, hostname=dest.smtp_host, port=dest.smtp_port, timeout=dest.timeout_seconds,
        use_tls=security == "tls", start_tls=security == "starttls",
        tls_context=_tls_context(dest) if security != "none" else None,
        username=dest.username, password=dest.password.get_secret_value() if dest.password else None,
    )
