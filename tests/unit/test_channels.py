"""What Teams, PagerDuty and an SMS provider receive for an alert, and what an alert e-mail says."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

import orjson
import pytest
from pydantic import ValidationError

from producers.synthetic import synthetic_alert as make_alert
from schemas.notifications import EmailDestination, WebhookDestination
from sinks.delivery.email import IssueFacts, build_email
from sinks.delivery.http_channels import build_request


def test_pagerduty_gets_an_events_v2_trigger_with_the_alerts_dedup_key() -> None:
    dest = WebhookDestination(name="pd", url="https://events.pagerduty.com/v2/enqueue", kind="pagerduty",
                              routing_key="R0UT1NGKEY")  # type: ignore[arg-type]
    alert = make_alert(severity="critical")
    body, headers = build_request(dest, alert)
    event = orjson.loads(body)
    assert event["routing_key"] == "R0UT1NGKEY" and event["event_action"] == "trigger"
    assert event["dedup_key"] == alert.dedup_key
    assert event["payload"]["severity"] == "critical" and event["payload"]["source"] == "billing"
    assert event["payload"]["summary"] == "[CRITICAL] Spike in billing: KeyError: 'cus_1234'"
    assert headers["Idempotency-Key"] == str(alert.alert_id)


def test_a_pagerduty_destination_without_routing_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="routing_key"):
        WebhookDestination(name="pd", url="https://events.pagerduty.com/v2/enqueue", kind="pagerduty")  # type: ignore[arg-type]


def test_teams_gets_an_adaptive_card() -> None:
    dest = WebhookDestination(name="teams", url="https://example.webhook.office.com/x", kind="teams")  # type: ignore[arg-type]
    card = orjson.loads(build_request(dest, make_alert(), suppressed=2)[0])["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    texts = [b.get("text", "") for b in card["content"]["body"]]
    assert texts[0] == "Spike: KeyError: 'cus_1234'" and "2 earlier alert(s)" in texts[-1]


def test_sms_is_a_form_post_in_twilios_shape() -> None:
    dest = WebhookDestination(
        name="sms", kind="sms", url="https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json",  # type: ignore[arg-type]
        form={"To": "+15550001", "From": "+15550002"}, headers={"Authorization": "Basic QUMxMjM6dG9rZW4="},  # type: ignore[dict-item]
    )
    body, headers = build_request(dest, make_alert(title="x" * 400))
    form = parse_qs(body.decode())
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form["To"] == ["+15550001"] and form["From"] == ["+15550002"]
    assert form["Body"][0].startswith("[ERROR] Spike in billing: xxx") and len(form["Body"][0]) <= 320
    assert headers["Authorization"] == "Basic QUMxMjM6dG9rZW4="


def test_an_alert_email_has_title_culprit_counts_first_and_last_seen_and_a_link() -> None:
    dest = EmailDestination(name="mail", smtp_host="smtp.example.com", sender="errstream@example.com",
                            recipients=["oncall@example.com", "lead@example.com"])
    alert = make_alert(kind="threshold", severity="warning")
    facts = IssueFacts(culprit="billing.charge in process", events=1234, users=56,
                       first_seen=datetime(2026, 11, 29, 8, 0, tzinfo=UTC),
                       last_seen=datetime(2026, 11, 30, 9, 15, tzinfo=UTC), status="acknowledged")
    msg = build_email(dest, alert, facts, "https://errors.example.com/")
    assert msg["Subject"] == "[WARNING] Threshold reached in billing: KeyError: 'cus_1234'"
    assert msg["To"] == "oncall@example.com, lead@example.com"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for line in ("Culprit:     billing.charge in process", "Events:      1,234", "Users:       56",
                 "First seen:  2026-11-29 08:00:00 UTC", "Last seen:   2026-11-30 09:15:00 UTC",
                 "Status:      acknowledged", f"https://errors.example.com/issues/{alert.fingerprint}"):
        assert line in text
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "KeyError: &#x27;cus_1234&#x27;" in html and "1,234" in html


@pytest.mark.parametrize("address", ["no-at-sign", "a@b.c\r\nBcc: victim@example.com", "<a@b.c>"])
def test_header_injection_through_addresses_is_refused(address: str) -> None:
    with pytest.raises(ValidationError):
        EmailDestination(name="mail", smtp_host="smtp.example.com", sender="errstream@example.com",
                         recipients=[address])
