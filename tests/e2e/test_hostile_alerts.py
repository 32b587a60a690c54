"""Hostile alerts through the real `errstream notify` with every channel on: it stays up, and every alert is
delivered or recorded as refused with its reason.

Channels: a real SMTP server (aiosmtpd, STARTTLS and AUTH) and local HTTP receivers standing in for a
generic webhook, Slack, Teams, PagerDuty and an SMS provider. Before the fix, the first alert whose title
held a ``\\r`` stopped notify with ``ValueError: Header values may not contain linefeed`` and, replayed after
every restart, silenced every channel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.roles import settings_env
from errstream.local.webhook_receiver import WebhookReceiver
from errstream_core.settings import Settings
from producers.synthetic import synthetic_alert as make_alert
from tests.support.alerts import publish, query_rows
from tests.support.kafka import read_topic
from tests.support.services import STORE_EVERYTHING_ENV, Service, wait_for
from tests.support.smtp import LocalSMTP

pytestmark = pytest.mark.e2e

KINDS = ["generic", "slack", "teams", "pagerduty", "sms"]
FAST = {"min_severity": "info", "rate_limit_per_minute": 10_000, "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.2, "max_attempts": 2}

HOSTILE: dict[str, dict[str, Any]] = {
    "cr": {"title": "a\rb", "message": "a\rb"},
    "crlf-header-injection": {"title": "x\r\nBcc: victim@example.com\r\nX-Injected: yes",
                              "message": "body\r\n.\r\nQUIT\r\n"},
    "control-characters": {"title": "nul\x00 bell\x07 esc\x1b[31mred\x1b[0m del\x7f c1\x85\x9b",
                           "message": "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x1f"},
    "long-title": {"title": "T" * 400, "message": "M" * 4_000},
    "slack-markup": {"title": "<!channel> <!here> <@U0123>", "message": "<https://evil.example|https://sso.example.com>"},
    "teams-markdown": {"title": "[Sign in again](https://evil.example)", "message": "**urgent** [reset](https://evil.example)"},
    "html": {"title": "<script>alert(1)</script>", "message": "<img src=x onerror=alert(1)>"},
    "emoji": {"title": "🔥🚨💥 checkout on fire", "message": "👩‍💻 ✅ 🇺🇦"},
    "right-to-left": {"title": "שגיאה في الدفع", "message": "rtl override \u202etxt.exe\u202c and \u2067isolate\u2069"},
    "line-separators": {"title": "one\u2028two\u2029three\x85four", "message": "one\u2028two"},
    "huge-integer-detail": {"title": "a detail no JSON encoder takes", "details": {"count": 10**30}},
    "unknown-destination": {"title": "routed by a rule to a typo", "details": {"destinations": ["oncal-mail"]}},
}
# Records that are not AlertEvents at all: dead letters with the reason, and notify goes on.
UNREADABLE = {
    "non-utf8": b'{"kind":"spike","title":"\xff\xfe\xc3\x28"}',
    "message-100kb": make_alert(message="m").model_dump_json().replace('"message":"m"',
                                                                        '"message":"' + "m" * 100_000 + '"').encode(),
    "not-json": b"\x00\x01 not json at all",
}


def _destinations(receiver: WebhookReceiver, smtp: LocalSMTP) -> tuple[str, str]:
    hooks = [{"name": kind, "kind": kind, "url": receiver.url(kind), **FAST} for kind in KINDS]
    hooks[3]["routing_key"] = "R0UT1NGKEY"
    hooks[4]["form"] = {"To": "+15550001", "From": "+15550002"}
    mail = [{"name": "mail", "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "security": "starttls",
             "username": smtp.user, "password": smtp.password, "sender": "errstream@example.com",
             "recipients": ["oncall@example.com"], "ca_file": str(smtp.ca_file), **FAST}]
    return orjson.dumps(hooks).decode(), orjson.dumps(mail).decode()


def _final(ch: Client, settings: Settings) -> dict[tuple[str, str], tuple[str, str]]:
    rows = query_rows(ch, f"SELECT toString(alert_id), destination, outcome, error FROM "
                          f"{settings.clickhouse_database}.alert_deliveries WHERE outcome != 'retry'")
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def test_hostile_alerts_are_each_delivered_or_refused_with_a_reason_and_notify_stays_up(
        settings: Settings, ch: Client, tmp_path: Path) -> None:
    with LocalSMTP(tmp_path) as smtp, WebhookReceiver() as receiver:
        hooks, mail = _destinations(receiver, smtp)
        notify = Service("notify", settings, tmp_path, extra_env={
            "ERRSTREAM_ALERT_WEBHOOKS": hooks, "ERRSTREAM_ALERT_EMAILS": mail}, args=["--only", "alerts"]).start()
        try:
            alerts = {name: make_alert(severity="critical", **fields) for name, fields in HOSTILE.items()}
            records = [a.model_dump_json().encode() for a in alerts.values()]
            publish(settings, settings.topic_alerts, records[:2] + list(UNREADABLE.values()) + records[2:])
            destinations = [*KINDS, "mail"]
            typo = str(alerts["unknown-destination"].alert_id)  # routed to "oncal-mail" only
            expected = {(str(a.alert_id), d) for a in alerts.values() for d in destinations if str(a.alert_id) != typo}
            expected.add((typo, "oncal-mail"))
            final = wait_for(lambda: _final(ch, settings), lambda f: expected <= set(f), 180,
                             "a final delivery row per alert and destination", diagnostics=notify.output)
            assert notify.running(), notify.output()

            outcomes = {key: outcome for key, (outcome, _) in final.items()}
            for (alert_id, dest), (outcome, error) in final.items():
                assert outcome in ("delivered", "refused", "unknown_destination"), (alert_id, dest, outcome, error)
                if outcome != "delivered":
                    assert error, (alert_id, dest, outcome)
            big = str(alerts["huge-integer-detail"].alert_id)
            assert outcomes[(big, "generic")] == "refused" and "64-bit" in final[(big, "generic")][1]
            assert outcomes[(big, "mail")] == "delivered"  # e-mail does not carry details: it goes out
            assert outcomes[(typo, "oncal-mail")] == "unknown_destination"
            assert "'oncal-mail', which is not configured" in final[(typo, "oncal-mail")][1]
            refused_elsewhere = {k for k, o in outcomes.items() if o != "delivered" and k[0] not in (big, typo)}
            assert refused_elsewhere == set(), refused_elsewhere

            # what people see: no injected header, no live markup
            for message in smtp.messages:
                assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
                assert message["Bcc"] is None and message["X-Injected"] is None
            assert len({m["Message-ID"] for m in smtp.messages}) == len(HOSTILE) - 1  # all but the typo's
            slack = [r.body for r in receiver.ok() if r.path == "/slack"]
            assert all("<!channel>" not in b["text"] and "<https://evil" not in b["text"] for b in slack)
            sms = [r.body["Body"] for r in receiver.ok() if r.path == "/sms"]
            assert sms and all("\n" not in t and "\r" not in t and len(t) <= 320 for t in sms)

            dead = read_topic(settings, settings.topic_dlq, expect=len(UNREADABLE) + 1, timeout=30)
            stages = sorted((d["stage"], d["reason"]) for d in dead if d["source_topic"] == settings.topic_alerts)
            # the unreadable records, and the huge integer's row (ClickHouse's JSON column takes no such number)
            assert stages == sorted([("alerts-decode", "invalid_json")] * 2 + [("alerts-decode", "invalid_event"),
                                                                                 ("alerts-rows", "processing_error")])

            # still up: a plain alert afterwards reaches every channel
            after = make_alert(severity="critical", title="after the storm")
            publish(settings, settings.topic_alerts, [after.model_dump_json().encode()])
            wait_for(lambda: _final(ch, settings), lambda f: all((str(after.alert_id), d) in f for d in destinations),
                     90, "the next alert delivered everywhere", diagnostics=notify.output)
            assert notify.running(), notify.output()
        finally:
            notify.stop()


def test_an_event_with_a_carriage_return_alerts_by_email_and_notify_stays_up(
        settings: Settings, ch: Client, tmp_path: Path) -> None:
    """The reported case through the whole stack: `errstream send` → worker (detection) → notify → SMTP."""
    with LocalSMTP(tmp_path) as smtp, WebhookReceiver() as receiver:
        _, mail = _destinations(receiver, smtp)
        worker = Service("worker", settings, tmp_path, extra_env=STORE_EVERYTHING_ENV).start()
        notify = Service("notify", settings, tmp_path, extra_env={"ERRSTREAM_ALERT_EMAILS": mail},
                         args=["--only", "alerts"]).start()
        try:
            event = b'{"service":"x","level":"error","message":"a\\rb"}\n'
            sent = subprocess.run([sys.executable, "-m", "errstream.cli", "send", "-"], input=event,
                                  capture_output=True, timeout=120, env={**os.environ, **settings_env(settings)}, check=False)
            assert sent.returncode == 0, sent.stderr
            wait_for(lambda: len(smtp.messages), lambda n: n >= 1, 180, "the new-issue e-mail",
                     diagnostics=lambda: worker.output()[-3000:] + notify.output())
            subject = str(smtp.messages[0]["Subject"])
            assert subject.startswith("[") and "a b" in subject and "\r" not in subject
            assert notify.running(), notify.output()
            rows = wait_for(lambda: _final(ch, settings), lambda f: len(f) >= 1, 30, "the delivery row")
            assert [o for o, _ in rows.values()] == ["delivered"]
        finally:
            notify.stop()
            worker.stop()
