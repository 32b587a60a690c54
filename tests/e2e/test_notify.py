"""Alerts sink, webhook notifications and chains, end to end: real broker, real ClickHouse, real HTTP receiver.

Each test runs the real `errstream notify` process with webhooks configured
through ERRSTREAM_ALERT_WEBHOOKS, publishes AlertEvents itself and looks at
what the receiver got and what ClickHouse recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.webhook_receiver import WebhookReceiver
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from producers.synthetic import synthetic_alert
from schemas.alerts import AlertEvent
from schemas.chains import ChainEvent, ErrorChain
from sinks.clickhouse.chains_sink import chains_topic
from sinks.delivery.dispatch import RECORD_BATCH
from tests.support.alerts import publish, publish_alerts, query_rows
from tests.support.kafka import read_topic
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e

FAST_RETRIES = {"backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.2, "timeout_seconds": 5}


def deliveries(ch: Client, settings: Settings) -> list[tuple[Any, ...]]:
    return query_rows(ch, f"SELECT toString(alert_id), destination, attempt, outcome, http_status, error "
                     f"FROM {settings.clickhouse_database}.alert_deliveries ORDER BY destination, attempted_at, attempt")


@pytest.fixture
def start_notify(settings: Settings, tmp_path: Path) -> Iterator[Callable[[list[dict[str, Any]]], Service]]:
    started: list[Service] = []

    def start(webhooks: list[dict[str, Any]], **env: str) -> Service:
        svc = Service("notify", settings, tmp_path,
                      extra_env={"ERRSTREAM_ALERT_WEBHOOKS": orjson.dumps(webhooks).decode(), **env})
        started.append(svc.start())
        return svc

    yield start
    for svc in started:
        svc.stop()


def test_webhook_failing_twice_then_succeeding_receives_the_alert_once(
    settings: Settings, ch: Client, start_notify: Callable[..., Service],
) -> None:
    secret_path = "services/T000/B000/s3cr3t-t0ken"
    with WebhookReceiver(script=[500, 500]) as receiver:
        svc = start_notify([{"name": "ops", "url": receiver.url(secret_path), **FAST_RETRIES}])
        alert = synthetic_alert(severity="critical")
        publish_alerts(settings, [alert])

        rows = wait_for(lambda: deliveries(ch, settings), lambda r: len(r) >= 3, 60, "3 delivery attempts",
                        diagnostics=svc.output)
        assert [(r[2], r[3], r[4]) for r in rows] == [(1, "retry", 500), (2, "retry", 500), (3, "delivered", 200)]
        assert {r[0] for r in rows} == {str(alert.alert_id)} and {r[1] for r in rows} == {"ops"}
        assert "HTTP 500" in rows[0][5]

        assert len(receiver.requests) == 3 and len(receiver.ok()) == 1
        assert {r.headers["idempotency-key"] for r in receiver.requests} == {str(alert.alert_id)}
        assert [r.headers["x-errstream-delivery-attempt"] for r in receiver.requests] == ["1", "2", "3"]
        assert AlertEvent.model_validate(receiver.ok()[0].body) == alert  # the generic payload is the AlertEvent

        stored = ch.query(f"SELECT toString(alert_id), kind, severity, service, fingerprint, details "
                          f"FROM {settings.clickhouse_database}.alerts").result_rows
        assert stored == [(str(alert.alert_id), "spike", "critical", "billing", alert.fingerprint,
                           '{"count":412,"baseline":38.2}')]
    svc.stop()
    assert "s3cr3t-t0ken" not in svc.output(), "webhook tokens must never be logged"


def test_retry_after_is_honoured_and_a_4xx_is_not_retried(
    settings: Settings, ch: Client, start_notify: Callable[..., Service],
) -> None:
    with WebhookReceiver(script=[(429, {"Retry-After": "1"})]) as limited, \
            WebhookReceiver(script=[404]) as missing:
        start_notify([
            {"name": "limited", "url": limited.url(), **FAST_RETRIES},
            {"name": "missing", "url": missing.url(), **FAST_RETRIES},
        ])
        publish_alerts(settings, [synthetic_alert()])
        rows = wait_for(lambda: deliveries(ch, settings), lambda r: len(r) >= 3, 60, "deliveries")
        assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
            ("limited", 1, "retry", 429), ("limited", 2, "delivered", 200), ("missing", 1, "rejected", 404),
        ]
        gap = limited.requests[1].at - limited.requests[0].at
        assert gap >= 0.9, f"Retry-After: 1 not honoured (retried after {gap:.2f}s; backoff alone is 0.2s)"
        assert len(missing.requests) == 1


def test_slack_destination_gets_text_and_blocks(
    settings: Settings, ch: Client, start_notify: Callable[..., Service],
) -> None:
    with WebhookReceiver() as slack:
        start_notify([{"name": "slack-oncall", "url": slack.url("services/T/B/x"), "kind": "slack"}])
        alert = synthetic_alert(kind="new_issue", severity="warning", title="ValueError: " + "x" * 300,
                           message="lookup failed for <cus_1234> & retried")
        publish_alerts(settings, [alert])
        wait_for(lambda: len(slack.requests), lambda n: n >= 1, 60, "the Slack request")
        body = slack.requests[0].body
        assert set(body) == {"text", "blocks"}
        assert body["text"].startswith(":warning: [WARNING] New issue in billing: ValueError")
        header, message, fields, context = body["blocks"]
        assert header["type"] == "header" and header["text"]["type"] == "plain_text"
        assert len(header["text"]["text"]) <= 150 and header["text"]["text"].endswith("…")
        assert message["text"] == {"type": "mrkdwn", "text": "lookup failed for &lt;cus_1234&gt; &amp; retried"}
        assert {f["text"].split("\n")[0] for f in fields["fields"]} == {"*Service*", "*Severity*", "*Kind*", "*Issue*"}
        assert f"`{alert.fingerprint}`" in fields["fields"][3]["text"]
        assert str(alert.alert_id) in context["elements"][0]["text"]
        assert slack.requests[0].headers["idempotency-key"] == str(alert.alert_id)


def test_a_new_issue_alert_carries_the_owner_its_ownership_rule_names(
    settings: Settings, ch: Client, start_notify: Callable[..., Service],
) -> None:
    rules = [{"kind": "tag", "pattern": "team=nobody", "owner": "ghost"},  # needs the event; none stored
             {"kind": "service", "pattern": "bill*", "owner": "#payments"}]
    with WebhookReceiver() as generic, WebhookReceiver() as slack:
        start_notify([{"name": "ops", "url": generic.url("hook")},
                      {"name": "slack", "url": slack.url("services/T/B/x"), "kind": "slack"}],
                     ERRSTREAM_OWNERSHIP_RULES=orjson.dumps(rules).decode())
        owned = synthetic_alert(kind="new_issue", severity="warning", title="New issue in billing: KeyError")
        unowned = synthetic_alert(kind="new_issue", severity="warning", service="search",
                                  dedup_key=f"new_issue:{uuid.uuid4().hex}")
        publish_alerts(settings, [owned, unowned])
        wait_for(lambda: len(generic.ok()) + len(slack.ok()), lambda n: n >= 4, 90, "both alerts at both hooks")
        bodies = {b["alert_id"]: b for b in (r.body for r in generic.ok())}
        assert bodies[str(owned.alert_id)]["owner"] == "#payments"
        assert bodies[str(unowned.alert_id)]["owner"] is None
        assert AlertEvent.model_validate(bodies[str(owned.alert_id)]) == owned.model_copy(update={"owner": "#payments"})
        texts = [r.body["text"] for r in slack.ok()]
        assert sum("(owner: #payments)" in t for t in texts) == 1 and sum("owner" in t for t in texts) == 1
        stored = dict(query_rows(ch, f"SELECT toString(alert_id), owner FROM {settings.clickhouse_database}.alerts"))
        assert stored == {str(owned.alert_id): "#payments", str(unowned.alert_id): ""}


def test_rate_limit_drops_excess_with_a_record_and_reports_it_in_the_next_message(
    settings: Settings, ch: Client, start_notify: Callable[..., Service],
) -> None:
    with WebhookReceiver() as pager, WebhookReceiver() as critical_only:
        start_notify([
            # 60/min refills one token a second; a burst of 2 passes at once.
            {"name": "pager", "url": pager.url(), "rate_limit_per_minute": 60, "rate_limit_burst": 2},
            {"name": "critical", "url": critical_only.url(), "min_severity": "critical", "kinds": ["spike"]},
        ])
        flood = [synthetic_alert(severity="critical" if i == 0 else "error") for i in range(5)]
        publish_alerts(settings, flood)
        rows = wait_for(lambda: [r for r in deliveries(ch, settings) if r[1] == "pager"],
                        lambda r: len(r) >= 5, 60, "5 pager delivery records")
        outcomes = sorted(r[3] for r in rows)
        assert outcomes == ["delivered", "delivered", "rate_limited", "rate_limited", "rate_limited"]
        assert all(r[2] == 0 and r[4] == 0 for r in rows if r[3] == "rate_limited")  # no request was made
        assert len(pager.requests) == 2

        wait_for(lambda: len(critical_only.requests), lambda n: n >= 1, 30, "the critical alert")
        assert [r.body["alert_id"] for r in critical_only.requests] == [str(flood[0].alert_id)]

        asyncio.run(asyncio.sleep(1.2))  # one token back
        late = synthetic_alert()
        publish_alerts(settings, [late])
        wait_for(lambda: len(pager.requests), lambda n: n >= 3, 30, "the next pager message")
        assert pager.requests[2].body["alert_id"] == str(late.alert_id)
        assert pager.requests[2].headers["x-errstream-suppressed-alerts"] == "3"
    stored = ch.query(f"SELECT count() FROM {settings.clickhouse_database}.alerts").result_rows[0][0]
    assert stored == 6  # rate limiting never loses the alert itself


def test_an_alert_published_twice_is_stored_and_delivered_once(
    settings: Settings, ch: Client, start_notify: Callable[..., Service],
) -> None:
    with WebhookReceiver() as receiver:
        start_notify([{"name": "ops", "url": receiver.url()}])
        alert, other = synthetic_alert(), synthetic_alert()
        publish_alerts(settings, [alert, alert])  # same batch
        wait_for(lambda: len(receiver.requests), lambda n: n >= 1, 60, "the first delivery")
        publish_alerts(settings, [alert, other])  # a later batch: already stored and delivered
        wait_for(lambda: len(receiver.requests), lambda n: n >= 2, 60, "the second alert")
        asyncio.run(asyncio.sleep(1.0))
        assert sorted(r.body["alert_id"] for r in receiver.requests) == sorted([str(alert.alert_id),
                                                                               str(other.alert_id)])
    db = settings.clickhouse_database
    assert ch.query(f"SELECT toString(alert_id), count() FROM {db}.alerts GROUP BY alert_id ORDER BY 1").result_rows \
        == sorted([(str(alert.alert_id), 1), (str(other.alert_id), 1)])
    assert sorted(r[0] for r in deliveries(ch, settings)) == sorted([str(alert.alert_id), str(other.alert_id)])


def test_bad_records_are_dead_lettered_and_the_sink_keeps_going(
    settings: Settings, ch: Client, start_notify: Callable[..., Service],
) -> None:
    start_notify([])
    good = synthetic_alert()
    publish(settings, settings.topic_alerts, [b"not json", b'{"kind": "spike"}', good.model_dump_json().encode()])
    db = settings.clickhouse_database
    wait_for(lambda: _count(ch, f"{db}.alerts"), lambda n: n >= 1, 60, "the valid alert stored")
    dead = read_topic(settings, settings.topic_dlq, expect=2, timeout=30)
    assert sorted(d["reason"] for d in dead) == ["invalid_event", "invalid_json"]
    assert {d["source_topic"] for d in dead} == {settings.topic_alerts}
    assert all(d["problems"] for d in dead)


def _count(ch: Client, table: str) -> int:
    rows = query_rows(ch, f"SELECT count() FROM {table}")
    return int(rows[0][0]) if rows else 0


def test_chain_versions_collapse_to_the_latest_in_error_chains(
    settings: Settings, ch: Client, start_notify: Callable[..., Service],
) -> None:
    start_notify([])
    t0 = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    events = [
        ChainEvent(event_id=uuid.uuid4(), service=s, fingerprint=hashlib.md5(s.encode()).hexdigest(),
                   title=f"{s} failed", timestamp=t0 + timedelta(milliseconds=300 * i))
        for i, s in enumerate(["db", "billing", "checkout"])
    ]

    def version(n: int) -> ErrorChain:
        part = events[:n]
        return ErrorChain(
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736", root_event_id=part[0].event_id, root_service="db",
            root_fingerprint=part[0].fingerprint, root_title=part[0].title, started_at=part[0].timestamp,
            ended_at=part[-1].timestamp, services=[e.service for e in part], event_count=n, events=part,
            updated_at=t0 + timedelta(seconds=n),
        )

    asyncio.run(ensure_topics(settings, [chains_topic(settings)]))
    publish(settings, chains_topic(settings), [version(2).model_dump_json().encode(),
                                              version(3).model_dump_json().encode()], key=b"4bf92f35")
    db = settings.clickhouse_database
    query = (f"SELECT root_service, services, event_count, events.service, events.timestamp "
             f"FROM {db}.error_chains FINAL")
    rows = wait_for(lambda: query_rows(ch, query), lambda r: bool(r) and r[0][2] == 3, 60, "the 3-event version")
    assert len(rows) == 1
    root, services, count, ev_services, ev_times = rows[0]
    assert (root, services, count, ev_services) == ("db", ["db", "billing", "checkout"], 3,
                                                    ["db", "billing", "checkout"])
    assert [t.replace(tzinfo=UTC) for t in ev_times] == [e.timestamp for e in events]


def test_a_burst_of_alerts_is_stored_and_delivered_exactly_once_each(
    settings: Settings, ch: Client, start_notify: Callable[..., Service],
) -> None:
    with WebhookReceiver() as receiver:
        burst = [synthetic_alert() for _ in range(600)]
        publish_alerts(settings, burst + burst[:50])  # before the sink starts: polls of hundreds, some twice
        start_notify([{"name": "ops", "url": receiver.url(), "rate_limit_per_minute": 100_000}])
        wait_for(lambda: len(receiver.requests), lambda n: n >= 600, 120, "600 deliveries")
        asyncio.run(asyncio.sleep(1.0))
        assert sorted(r.body["alert_id"] for r in receiver.requests) == sorted(str(a.alert_id) for a in burst)
    db = settings.clickhouse_database
    assert ch.query(f"SELECT count(), uniqExact(alert_id) FROM {db}.alerts").result_rows[0] == (600, 600)


def test_a_killed_notifier_loses_no_alert_and_stores_each_once(
    settings: Settings, ch: Client, start_notify: Callable[..., Service],
) -> None:
    """SIGKILL mid-delivery: after a restart every alert reaches the receiver (repeats carry the same
    Idempotency-Key for the receiver to drop) and `alerts` still holds each alert once."""
    with WebhookReceiver(delay=0.02) as receiver:
        hooks = [{"name": "ops", "url": receiver.url(), "rate_limit_per_minute": 100_000}]
        alerts = [synthetic_alert() for _ in range(300)]
        publish_alerts(settings, alerts)
        first = start_notify(hooks)
        wait_for(lambda: len(receiver.requests), lambda n: n >= 60, 60, "some deliveries", diagnostics=first.output)
        first.kill()
        killed_at = len(receiver.requests)
        assert killed_at < 300, "the kill came too late to test anything"
        start_notify(hooks)
        wait_for(lambda: {r.body["alert_id"] for r in receiver.requests}, lambda ids: len(ids) >= 300, 120,
                 "every alert delivered after the restart")
        for r in receiver.requests:
            assert r.headers["idempotency-key"] == r.body["alert_id"]
        repeats = len(receiver.requests) - 300
        print(f"killed after {killed_at} deliveries; {repeats} repeated after the restart")
        assert repeats <= RECORD_BATCH  # records are written every RECORD_BATCH deliveries
    db = settings.clickhouse_database
    assert ch.query(f"SELECT count(), uniqExact(alert_id) FROM {db}.alerts").result_rows[0] == (300, 300)
