"""What a webhook request for an alert looks like: body and headers per destination kind.

``generic`` sends the AlertEvent itself (its JSON schema is exported with the
other contracts), so receivers parse one documented shape. ``slack`` sends an
incoming-webhook message: ``text`` as the notification fallback plus Block Kit
``blocks`` within Slack's size limits. Every request carries
``Idempotency-Key: <alert_id>`` — the same on every retry and replay — so a
receiver can drop repeats that at-least-once delivery may produce.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from schemas.alerts import AlertEvent
from schemas.notifications import WebhookDestination

USER_AGENT = "errstream-notifier/0.1"
SUPPRESSED_HEADER = "X-Errstream-Suppressed-Alerts"

SEVERITY_EMOJI = {
    "info": ":information_source:", "warning": ":warning:", "error": ":red_circle:", "critical": ":rotating_light:",
}
KIND_LABEL = {
    "new_issue": "New issue", "regression": "Regression", "threshold": "Threshold reached",
    "spike": "Spike", "error_chain": "Error chain",
}
# Slack Block Kit limits: header text 150 chars, section text 3,000, field 2,000.
HEADER_MAX, SECTION_MAX, FIELD_MAX = 150, 3_000, 2_000


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn_escape(text: str) -> str:
    """Slack's three control characters; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(alert: AlertEvent) -> str:
    """The alert in one line, naming its kind and service once.

    Detectors title most alerts with their kind and service already ("New issue in billing: KeyError…",
    "Regression in …", "Spike in …", "Error chain across …"); prefixing those again read "New issue in
    billing: New issue in billing: …". Titles that do not start with the kind ("KeyError reached 100
    events") get the prefix.
    """
    label = KIND_LABEL.get(alert.kind, alert.kind)
    if alert.title.lower().startswith(label.lower()):
        return alert.title
    return f"{label} in {alert.service}: {alert.title}"


def generic_payload(alert: AlertEvent) -> dict[str, Any]:
    return alert.model_dump(mode="json")


def slack_payload(alert: AlertEvent, suppressed: int = 0) -> dict[str, Any]:
    emoji = SEVERITY_EMOJI[alert.severity]
    label = KIND_LABEL.get(alert.kind, alert.kind)
    summary = headline(alert)
    text = f"{emoji} [{alert.severity.upper()}] {summary}"
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*Service*\n{_mrkdwn_escape(alert.service)}", FIELD_MAX)},
        {"type": "mrkdwn", "text": f"*Severity*\n{alert.severity}"},
        {"type": "mrkdwn", "text": f"*Kind*\n{label}"},
    ]
    if alert.fingerprint:
        fields.append({"type": "mrkdwn", "text": f"*Issue*\n`{alert.fingerprint}`"})
    context = [
        f"alert `{alert.alert_id}`",
        f"dedup `{_cut(_mrkdwn_escape(alert.dedup_key), 200)}`",
        f"{alert.created_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(summary, HEADER_MAX),
                                    "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": _cut(_mrkdwn_escape(alert.message or alert.title), SECTION_MAX)}},
        {"type": "section", "fields": fields},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
    ]
    if suppressed:
        note = f":hourglass: {suppressed} earlier alert(s) to this channel were held back by its rate limit"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
        text += f" (+{suppressed} suppressed by rate limit)"
    return {"text": _cut(text, SECTION_MAX), "blocks": blocks}


def build_request(dest: WebhookDestination, alert: AlertEvent, suppressed: int = 0) -> tuple[bytes, dict[str, str]]:
    """Body and headers, identical for every attempt of this delivery (retries must not change the key)."""
    payload = slack_payload(alert, suppressed) if dest.kind == "slack" else generic_payload(alert)
    body = orjson.dumps(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": str(alert.alert_id),
        "X-Errstream-Alert-Kind": alert.kind,
        "X-Errstream-Severity": alert.severity,
    }
    if suppressed:
        headers[SUPPRESSED_HEADER] = str(suppressed)
    if dest.secret is not None:
        digest = hmac.new(dest.secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        headers["X-Errstream-Signature"] = f"sha256={digest}"
    headers.update({k: v.get_secret_value() for k, v in dest.headers.items()})
    return body, headers
