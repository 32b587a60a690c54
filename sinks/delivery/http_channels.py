"""What a webhook request for an alert looks like: body and headers per destination kind.

``generic`` sends the AlertEvent itself (its JSON schema is exported with the
other contracts), so receivers parse one documented shape. ``teams`` sends an
Adaptive Card message, ``pagerduty`` an Events API v2 trigger (its dedup key is
the alert's), ``sms`` a form post to a provider's SMS API (Twilio's shape). ``slack`` sends an
incoming-webhook message: ``text`` as the notification fallback plus Block Kit
``blocks`` within Slack's size limits. Every request carries
``Idempotency-Key: <alert_id>`` — the same on every retry and replay — so a
receiver can drop repeats that at-least-once delivery may produce.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any
from urllib.parse import urlencode

import orjson

from schemas.alerts import AlertEvent
from schemas.notifications import WebhookDestination
from sinks.delivery.alert_text import clean, one_line

USER_AGENT = "errstream-notifier/0.1"
SUPPRESSED_HEADER = "X-Errstream-Suppressed-Alerts"

SEVERITY_EMOJI = {
    "info": ":information_source:", "warning": ":warning:", "error": ":red_circle:", "critical": ":rotating_light:",
}
KIND_LABEL = {
    "new_issue": "New issue", "regression": "Regression", "threshold": "Threshold reached",
    "spike": "Spike", "error_chain": "Error chain", "escalating": "Escalating issue",
}
# Slack Block Kit limits: header text 150 chars, section text 3,000, field 2,000.
HEADER_MAX, SECTION_MAX, FIELD_MAX = 150, 3_000, 2_000


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn_escape(text: str) -> str:
    """Slack's three control characters; everything else is literal.

    Escaping ``<`` and ``>`` is what stops ``<!channel>`` and disguised links (``<https://evil|https://sso…>``)
    in an event's message: applied to the fallback ``text`` as well as the blocks, since Slack renders both.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_TEAMS_MARKDOWN = re.compile(r"([\\\[\]])")


def _teams_escape(text: str) -> str:
    """Adaptive Card TextBlocks render a Markdown subset: backslash-escape the brackets of its link syntax,
    so ``[sign in](https://evil)`` in an event's message shows as text, not as a link; HTML has no effect there."""
    return _TEAMS_MARKDOWN.sub(r"\\\1", text)


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
    text = f"{emoji} [{alert.severity.upper()}] {_mrkdwn_escape(one_line(summary))}"
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*Service*\n{_mrkdwn_escape(alert.service)}", FIELD_MAX)},
        {"type": "mrkdwn", "text": f"*Severity*\n{alert.severity}"},
        {"type": "mrkdwn", "text": f"*Kind*\n{label}"},
    ]
    if alert.fingerprint:
        fields.append({"type": "mrkdwn", "text": f"*Issue*\n`{alert.fingerprint}`"})
    if alert.owner:
        fields.append({"type": "mrkdwn", "text": _cut(f"*Owner*\n{_mrkdwn_escape(alert.owner)}", FIELD_MAX)})
        text += f" (owner: {_mrkdwn_escape(one_line(alert.owner))})"
    context = [
        f"alert `{alert.alert_id}`",
        f"dedup `{_cut(_mrkdwn_escape(alert.dedup_key), 200)}`",
        f"{alert.created_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(one_line(summary), HEADER_MAX),
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


PAGERDUTY_SEVERITY = {"info": "info", "warning": "warning", "error": "error", "critical": "critical"}
SMS_MAX = 320  # two SMS segments; providers split longer texts and bill each part


def short_text(alert: AlertEvent) -> str:
    """One line for a pager or a phone: severity, what, where."""
    label = KIND_LABEL.get(alert.kind, alert.kind)
    return one_line(f"[{alert.severity.upper()}] {label} in {alert.service}: {alert.title}")


def pagerduty_payload(dest: WebhookDestination, alert: AlertEvent) -> dict[str, Any]:
    """PagerDuty Events API v2 ``trigger``; the dedup key folds repeats of one condition into one incident."""
    assert dest.routing_key is not None  # the model requires it for this kind
    return {
        "routing_key": dest.routing_key.get_secret_value(),
        "event_action": "trigger",
        "dedup_key": _cut(alert.dedup_key, 255),
        "payload": {
            "summary": _cut(short_text(alert), 1024),
            "source": one_line(alert.service, 255),
            "severity": PAGERDUTY_SEVERITY[alert.severity],
            "timestamp": alert.created_at.isoformat(),
            "component": alert.fingerprint or "",
            "group": alert.service,
            "class": alert.kind,
            "custom_details": {"message": alert.message, "alert_id": str(alert.alert_id), **alert.details},
        },
        "client": "errstream",
    }


def teams_payload(alert: AlertEvent, suppressed: int = 0) -> dict[str, Any]:
    """A Microsoft Teams message with an Adaptive Card (incoming webhooks and Workflows accept it)."""
    label = KIND_LABEL.get(alert.kind, alert.kind)
    facts = [{"title": "Service", "value": _teams_escape(alert.service)}, {"title": "Severity", "value": alert.severity},
             {"title": "Kind", "value": label}]
    if alert.fingerprint:
        facts.append({"title": "Issue", "value": _teams_escape(alert.fingerprint)})
    if alert.owner:
        facts.append({"title": "Owner", "value": _teams_escape(alert.owner)})
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True,
         "text": _teams_escape(_cut(one_line(f"{label}: {alert.title}"), 400))},
        {"type": "TextBlock", "wrap": True, "text": _teams_escape(_cut(clean(alert.message or alert.title),
                                                                       SECTION_MAX))},
        {"type": "FactSet", "facts": facts},
    ]
    if suppressed:
        body.append({"type": "TextBlock", "isSubtle": True, "wrap": True,
                     "text": f"{suppressed} earlier alert(s) were held back by this channel's rate limit"})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body}
    return {"type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}


def sms_form(dest: WebhookDestination, alert: AlertEvent) -> dict[str, str]:
    """A provider's SMS API as a form post (Twilio: To, From and Body, with HTTP basic auth in headers)."""
    return {**dest.form, dest.sms_text_field: _cut(short_text(alert), SMS_MAX)}


def build_request(dest: WebhookDestination, alert: AlertEvent, suppressed: int = 0) -> tuple[bytes, dict[str, str]]:
    """Body and headers, identical for every attempt of this delivery (retries must not change the key)."""
    content_type = "application/json"
    if dest.kind == "sms":
        body = urlencode(sms_form(dest, alert)).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        if dest.kind == "slack":
            payload = slack_payload(alert, suppressed)
        elif dest.kind == "teams":
            payload = teams_payload(alert, suppressed)
        elif dest.kind == "pagerduty":
            payload = pagerduty_payload(dest, alert)
        else:
            payload = generic_payload(alert)
        body = orjson.dumps(payload)
    headers = {
        "Content-Type": content_type,
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
