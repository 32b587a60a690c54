"""Hostile alert text in every channel's formatter: no header or markup injection, no exception."""

from __future__ import annotations

import email
import email.policy
from urllib.parse import parse_qs

import orjson
import pytest

from producers.synthetic import synthetic_alert as make_alert
from schemas.alerts import AlertEvent
from schemas.notifications import EmailDestination, WebhookDestination
from sinks.delivery.alert_text import clean, one_line, safe_alert
from sinks.delivery.email import build_email
from sinks.delivery.http_channels import build_request, slack_payload

MAIL = EmailDestination(name="mail", smtp_host="127.0.0.1", sender="errstream@example.com",
                        recipients=["oncall@example.com"])
HOOKS = [
    WebhookDestination(name="generic", url="https://receiver.example/hook"),  # type: ignore[arg-type]
    WebhookDestination(name="slack", url="https://hooks.slack.com/x", kind="slack"),  # type: ignore[arg-type]
    WebhookDestination(name="teams", url="https://teams.example/x", kind="teams"),  # type: ignore[arg-type]
    WebhookDestination(name="pd", url="https://events.pagerduty.com/v2/enqueue", kind="pagerduty",
                       routing_key="R0UT1NG"),  # type: ignore[arg-type]
    WebhookDestination(name="sms", url="https://sms.example/x", kind="sms",
                       form={"To": "+15550001"}),  # type: ignore[arg-type]
]
HOSTILE_TITLES = [
    "a\rb", "a\r\nBcc: victim@example.com", "a\nX-Injected: yes", "nul\x00bell\x07esc\x1b[31mred",
    "c1\x85\x9bcontrol", "line\u2028separator", "rtl \u202egnp.exe", "עברית العربية", "emoji 🔥🚨💥",
    "replacement \ufffd char", "x" * 400,
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_an_alert_email_subject_is_one_safe_line_whatever_the_title(title: str) -> None:
    """Before: ``a\\rb`` raised ``ValueError: Header values may not contain linefeed`` and stopped notify."""
    alert = make_alert(title=title, message=f"{title}\nsecond line")
    raw = build_email(MAIL, alert, None).as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    subject = str(parsed["Subject"])
    assert "\r" not in subject and "\n" not in subject and "\u202e" not in subject and "\x1b" not in subject
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    assert subject.startswith("[ERROR] Spike in billing: ")


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_every_webhook_kind_formats_a_hostile_alert(title: str) -> None:
    alert = safe_alert(make_alert(title=title, message=title * 3, details={"note": title}))
    for dest in HOOKS:
        body, headers = build_request(dest, alert)
        assert all("\n" not in v and "\r" not in v for v in headers.values())
        if dest.kind == "sms":
            text = parse_qs(body.decode())["Body"][0]
            assert "\n" not in text and "\r" not in text and len(text) <= 320
        else:
            orjson.loads(body)


def test_slack_fallback_text_escapes_mentions_and_disguised_links() -> None:
    """Before: ``text`` carried ``<!channel>`` and ``<https://evil|https://sso…>`` as Slack markup."""
    alert = make_alert(title="<!channel> log in at <https://evil.example|https://sso.example.com>",
                       message="<!here> <@U123>")
    payload = slack_payload(safe_alert(alert))
    blocks = [b for b in payload["blocks"] if b["type"] != "header"]  # plain_text: Slack parses no markup there
    everything = payload["text"] + orjson.dumps(blocks).decode()
    assert "<!channel>" not in everything and "<!here>" not in everything and "<https://evil" not in everything
    assert "&lt;!channel&gt;" in payload["text"] and "&lt;https://evil.example|https://sso.example.com&gt;" \
        in payload["text"]


def test_teams_text_shows_markdown_links_as_text() -> None:
    alert = make_alert(title="[Sign in again](https://evil.example)", message="[reset](https://evil.example)")
    card = orjson.loads(build_request(HOOKS[2], safe_alert(alert))[0])["attachments"][0]["content"]
    texts = [b.get("text", "") for b in card["body"]]
    assert r"\[Sign in again\](https://evil.example)" in texts[0] and r"\[reset\]" in texts[1]


def test_cleaning_keeps_text_people_read_and_removes_what_machines_act_on() -> None:
    assert clean("a\r\nb\rc\u2029d\te") == "a\nb\nc\nd\te"
    assert clean("x\x00\x1b[0m\x7f\x9b") == "x[0m"
    assert one_line("  several\n\n lines\there ") == "several lines here"
    assert one_line("rtl \u202eexe.pdf \u2067x\u2069") == "rtl exe.pdf x"
    assert clean("שלום 🔥") == "שלום 🔥"
    assert clean("\ud800") == "\ufffd"
    assert len(clean("x" * 100_000)) == 10_000


def test_safe_alert_keeps_identity_and_cleans_free_text() -> None:
    alert = AlertEvent(kind="spike", severity="critical", dedup_key="k\r\n", service="svc\n", title="t\r",
                       message="m\x00", details={"nested": {"k\x1b": ["v\x07"]}})
    safe = safe_alert(alert)
    assert (safe.alert_id, safe.kind, safe.severity) == (alert.alert_id, "spike", "critical")
    assert (safe.title, safe.message, safe.service, safe.dedup_key) == ("t", "m", "svc", "k")
    assert safe.details == {"nested": {"k": ["v"]}}
