"""The pieces of the notifier that need no broker: rate limit, Retry-After, URL redaction, payloads, signatures."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from errstream_core.settings import Settings
from errstream_core.token_bucket import TokenBucket
from producers.synthetic import synthetic_alert
from schemas.alerts import AlertEvent
from schemas.notifications import EmailDestination, WebhookDestination
from sinks.delivery.dispatch import parse_retry_after
from sinks.delivery.email import build_email
from sinks.delivery.http_channels import SUPPRESSED_HEADER, build_request, slack_payload, teams_payload
from sinks.delivery.owners import with_owners

SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/abcdefSECRET"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_passes_a_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_minute=6, capacity=3, clock=clock)  # one token every 10 s
    assert [bucket.try_take() for _ in range(5)] == [True, True, True, False, False]
    assert bucket.seconds_until_available() == pytest.approx(10.0)
    clock.now += 9.9
    assert not bucket.try_take()
    clock.now += 0.2
    assert bucket.try_take() and not bucket.try_take()
    clock.now += 3600  # idle for an hour: never more than the capacity
    assert sum(bucket.try_take() for _ in range(10)) == 3


def test_token_bucket_defaults_to_a_minute_of_burst() -> None:
    bucket = TokenBucket(rate_per_minute=30, clock=FakeClock())
    assert sum(bucket.try_take() for _ in range(100)) == 30


def test_retry_after_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 23, 17, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Mon, 23 Nov 2026 17:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Mon, 23 Nov 2026 16:00:00 GMT", now=now) == 0.0  # in the past: retry now
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_webhook_urls_never_show_in_reprs_errors_or_redactions(monkeypatch: pytest.MonkeyPatch) -> None:
    dest = WebhookDestination(name="slack", url=SLACK_URL, kind="slack")
    assert "SECRET" not in repr(dest) and "SECRET" not in str(dest.model_dump())
    assert dest.redacted_url == "https://hooks.slack.com/…"
    leaked = f"ConnectError: could not reach {SLACK_URL}; path /services/T0001/B0002/abcdefSECRET"
    assert "SECRET" not in dest.redact(leaked)

    monkeypatch.setenv("ERRSTREAM_ALERT_WEBHOOKS", orjson.dumps([{"name": "x", "url": "ftp://h/SECRET"}]).decode())
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert "SECRET" not in str(exc.value) and "absolute http(s) URL" in str(exc.value)


def test_destinations_from_the_environment_with_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERRSTREAM_ALERT_WEBHOOKS", orjson.dumps([
        {"name": "oncall", "url": SLACK_URL, "kind": "slack", "min_severity": "error", "kinds": ["spike", "regression"],
         "rate_limit_per_minute": 10},
    ]).decode())
    [dest] = Settings().alert_webhooks
    assert (dest.kind, dest.rate_limit_per_minute, dest.max_attempts) == ("slack", 10, 6)
    assert dest.accepts(synthetic_alert(kind="spike", severity="critical"))
    assert not dest.accepts(synthetic_alert(kind="spike", severity="warning"))
    assert not dest.accepts(synthetic_alert(kind="new_issue", severity="critical"))


def test_a_digest_destination_that_is_not_configured_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERRSTREAM_ALERT_WEBHOOKS", orjson.dumps([{"name": "oncall", "url": SLACK_URL}]).decode())
    monkeypatch.setenv("ERRSTREAM_DIGEST_DESTINATIONS", '["oncal"]')
    with pytest.raises(ValidationError, match=r"DIGEST_DESTINATIONS names \['oncal'\].*configured: \['oncall'\]"):
        Settings()
    monkeypatch.setenv("ERRSTREAM_DIGEST_DESTINATIONS", '["oncall"]')
    assert Settings().destination_names == {"oncall"}


def test_requests_carry_idempotency_key_signature_and_suppressed_count() -> None:
    dest = WebhookDestination(name="siem", url="https://siem.example/hook", secret="k3y",
                              headers={"Authorization": "Bearer t0k"})
    alert = synthetic_alert()
    body, headers = build_request(dest, alert, suppressed=4)
    assert orjson.loads(body) == alert.model_dump(mode="json")
    assert headers["Idempotency-Key"] == str(alert.alert_id)
    assert headers[SUPPRESSED_HEADER] == "4"
    assert headers["Authorization"] == "Bearer t0k"
    expected = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert headers["X-Errstream-Signature"] == f"sha256={expected}"
    assert build_request(dest, alert)[0] == body  # the same body on every attempt
    assert SUPPRESSED_HEADER not in build_request(dest, alert)[1]


def test_slack_payload_mentions_suppressed_alerts_and_respects_limits() -> None:
    alert = synthetic_alert(severity="critical", message="m" * 4000, fingerprint=None, dedup_key="d" * 400)
    payload = slack_payload(alert, suppressed=2)
    assert payload["text"].startswith(":rotating_light: [CRITICAL] Spike in billing")
    assert payload["text"].endswith("(+2 suppressed by rate limit)")
    header, message, fields, context, note = payload["blocks"]
    assert header["type"] == "header" and context["type"] == "context"
    assert len(message["text"]["text"]) == 3000
    assert [f["text"].split("\n")[0] for f in fields["fields"]] == ["*Service*", "*Severity*", "*Kind*"]
    assert "2 earlier alert(s)" in note["elements"][0]["text"]
    assert len(orjson.dumps(payload)) < 40_000  # Slack rejects oversized messages


def _detected(kind: str) -> AlertEvent:
    """An alert as the real issue detector raises it for a Go service's error."""
    from stream_processors.detection_rules.config import DetectionConfig
    from stream_processors.detection_rules.issues import IssueDetector
    from stream_processors.detection_signals import Signal

    t0 = datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC).timestamp()
    det = IssueDetector(DetectionConfig(thresholds=(1,)))
    title = "*net.OpError: dial tcp 10.0.0.7:5432: connect: connection refused"

    def sig(ts: float) -> Signal:
        return Signal(event_id=str(uuid.uuid4()), service="billing-go", fingerprint="ab" * 16, title=title,
                      level="error", ts=ts, received=ts, trace_id=None, span_id=None, parent_span_id=None)

    state, alerts = det.observe(None, sig(t0), None)
    if kind == "regression":
        resolved = {"status": "resolved", "changed_at": "2026-11-23T12:30:00+00:00", "changed_by": "bob"}
        _, alerts = det.observe(state, sig(t0 + 3600), resolved)
    return next(a for a in alerts if a.kind == kind)


def test_slack_text_names_kind_and_service_once() -> None:
    payload = slack_payload(_detected("new_issue"))
    title = "New issue in billing-go: *net.OpError: dial tcp 10.0.0.7:5432: connect: connection refused"
    assert payload["text"] == f":warning: [WARNING] {title}"
    assert payload["blocks"][0]["text"]["text"] == title
    assert payload["blocks"][1]["text"]["text"] == "First seen at 2026-11-23 12:00:05 UTC"

    regression = slack_payload(_detected("regression"))
    assert regression["text"] == (":red_circle: [ERROR] Regression in billing-go: *net.OpError: dial tcp "
                                  "10.0.0.7:5432: connect: connection refused")
    assert regression["blocks"][1]["text"]["text"] == (
        "Resolved at 2026-11-23 12:30:00 UTC by bob, seen again at 2026-11-23 13:00:05 UTC")

    # A title without its kind gets the prefix once.
    threshold = slack_payload(_detected("threshold"))
    assert threshold["text"] == (":information_source: [INFO] Threshold reached in billing-go: *net.OpError: dial tcp "
                                 "10.0.0.7:5432: connect: connection refused reached 1 events")
    assert threshold["blocks"][1]["text"]["text"] == "1 events since 2026-11-23 12:00:05 UTC"


def test_the_owner_shows_in_slack_teams_and_email_only_when_there_is_one() -> None:
    alert = synthetic_alert(kind="new_issue", title="New issue in billing: KeyError")
    owned = with_owners([alert], {str(alert.alert_id): "#pay<ments>"})[0]
    assert owned.owner == "#pay<ments>" and owned.alert_id == alert.alert_id
    assert with_owners([owned], {str(alert.alert_id): "other"})[0].owner == "#pay<ments>"  # set once, kept
    slack = slack_payload(owned)
    assert slack["text"].endswith("(owner: #pay&lt;ments&gt;)")  # the fallback text is mrkdwn too
    assert "*Owner*\n#pay&lt;ments&gt;" in [f["text"] for f in slack["blocks"][2]["fields"]]
    assert "owner" not in slack_payload(alert)["text"].lower()
    facts = teams_payload(owned)["attachments"][0]["content"]["body"][2]["facts"]
    assert {"title": "Owner", "value": "#pay<ments>"} in facts
    dest = EmailDestination(name="oncall", smtp_host="127.0.0.1", sender="errstream@example.org",
                            recipients=["oncall@example.org"])
    text = build_email(dest, owned, None).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Owner:       #pay<ments>" in text
    assert "Owner:       —" in build_email(dest, alert, None).get_body(("plain",)).get_content()  # type: ignore[union-attr]
