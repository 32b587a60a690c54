"""The daily digest on a known history: what it says, how it renders, and that it goes out once a day."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.webhook_receiver import WebhookReceiver
from errstream_core.settings import Settings
from schemas.notifications import EmailDestination
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.delivery.digest import DigestSender, build_digest, render_email, render_slack, render_text
from tests.e2e.analytics.data import build, fp, load
from tests.support.smtp import LocalSMTP

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def history(clickhouse_url: str) -> Iterator[tuple[Settings, Client]]:
    settings = Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"errstream_d{uuid.uuid4().hex[:10]}")
    migrate(settings)
    client = connect(settings, database=settings.clickhouse_database)
    load(client, settings.clickhouse_database, build())
    yield settings, client
    client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    client.close()


def test_the_digest_lists_new_and_top_issues_and_the_rate_change(history: tuple[Settings, Client]) -> None:
    settings, client = history
    db = settings.clickhouse_database
    d = build_digest(client, db)
    expected_top = [r[0] for r in client.query(
        f"SELECT fingerprint FROM {db}.v_issues_24h ORDER BY events_24h DESC, fingerprint LIMIT 10").result_rows]
    assert [i.fingerprint for i in d.top_issues] == expected_top and d.top_issues[0].fingerprint == fp("A")
    assert {i.fingerprint for i in d.new_issues} == {r[0] for r in client.query(
        f"SELECT fingerprint FROM {db}.v_issues_24h WHERE is_new").result_rows}
    assert fp("A") not in {i.fingerprint for i in d.new_issues}  # A was also seen yesterday
    assert d.events == sum(r[0] for r in client.query(
        f"SELECT events_current FROM {db}.v_error_rate_change").result_rows) > 0
    text = render_text(d, "https://errors.example.com")
    assert text.startswith(d.title) and "New issues:" in text and "Errors by service" in text
    assert "KeyError: 'cart_id'" in text and "Open errstream: https://errors.example.com/" in text


def test_the_digest_renders_for_slack_and_email(history: tuple[Settings, Client]) -> None:
    settings, client = history
    d = build_digest(client, settings.clickhouse_database)
    slack = render_slack(d)
    assert slack["text"] == d.title and slack["blocks"][0]["type"] == "header"
    sections = [b["text"]["text"] for b in slack["blocks"] if b["type"] == "section"]
    assert any(s.startswith("*Top issues*") and "KeyError: 'cart_id'" in s for s in sections)
    assert all(len(s) <= 3000 for s in sections)
    dest = EmailDestination(name="mail", smtp_host="smtp.example.com", sender="e@example.com",
                            recipients=["team@example.com"])
    mail = render_email(d, dest)
    assert mail["Subject"] == d.title
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<h3>Top issues</h3>" in html and "KeyError: &#x27;cart_id&#x27;" in html


def test_the_digest_goes_to_slack_and_email_once_a_day(history: tuple[Settings, Client], tmp_path: Path) -> None:
    base, client = history
    with WebhookReceiver() as receiver, LocalSMTP(tmp_path) as smtp:
        settings = Settings(
            clickhouse_url=base.clickhouse_url, clickhouse_database=base.clickhouse_database,
            alert_webhooks=[{"name": "team-slack", "kind": "slack", "url": receiver.url("hook")}],  # type: ignore[list-item]
            alert_emails=[{"name": "team-mail", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,  # type: ignore[list-item]
                           "username": smtp.user, "password": smtp.password, "sender": "e@example.com",
                           "recipients": ["team@example.com"], "ca_file": str(smtp.ca_file)}],
            digest_destinations=["team-slack", "team-mail"], digest_at="00:00",
        )
        sender = DigestSender(settings, client)

        async def two_rounds() -> tuple[int, int]:
            async with httpx.AsyncClient() as http:
                now = datetime.now(UTC)
                first = await sender.round(http, now)
                second = await sender.round(http, now + timedelta(minutes=5))
                return first, second

        assert asyncio.run(two_rounds()) == (2, 0)
        assert len(receiver.ok()) == 1 and receiver.ok()[0].body["blocks"][0]["type"] == "header"
        assert len(smtp.messages) == 1 and smtp.messages[0]["Subject"].startswith("errstream daily digest")


def test_the_headline_counts_every_new_issue_and_the_rate_is_a_rate(clickhouse_url: str) -> None:
    """Before: the headline said "10 new issue(s)" when 36 were new, and the "error rate" lines were counts."""
    from dataclasses import replace

    from tests.e2e.analytics.data import BURSTS, _event, insert_batch

    settings = Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"errstream_d{uuid.uuid4().hex[:10]}")
    migrate(settings)
    client = connect(settings, database=settings.clickhouse_database)
    db = settings.clickhouse_database
    try:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        template = replace(BURSTS[2], ago=timedelta(hours=3), n=2)  # B: billing, new today
        records = []
        for k in range(36):
            for i in range(template.n):
                record = _event(template, i, now - template.ago + timedelta(minutes=k))
                record["fingerprint"] = fp(f"new-{k}")
                record["event"]["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_OID, f"new-{k}-{i}"))
                records.append(record)
        insert_batch(client, db, records, "digest-many")
        minute = now - timedelta(hours=2)
        client.insert(f"{db}.session_aggregates_in", [[minute, "billing", "production", "1.0.0", 400, 10, 0, 0,
                                                       [], [], [], []]],
                      column_names=["minute", "service", "environment", "release", "started", "errored", "crashed",
                                    "abnormal", "errored_session_hashes", "crashed_session_hashes", "user_hashes",
                                    "crashed_user_hashes"])
        d = build_digest(client, db)
        assert d.new_issue_count == 36 and len(d.new_issues) == 10
        assert "36 new issue(s)" in d.title
        text = render_text(d)
        assert "… and 26 more" in text
        [billing] = [r for r in d.rates if r.service == "billing"]
        assert billing.events == 72 and billing.error_rate_pct == pytest.approx(2.5)
        assert "72 events" in text and "2.50 % errored" in text
        sections = [b["text"]["text"] for b in render_slack(d)["blocks"] if b["type"] == "section"]
        assert any("… and 26 more" in s for s in sections) and all(len(s) <= 3000 for s in sections)
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")
        client.close()
