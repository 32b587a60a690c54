"""No record on any topic `errstream notify` reads stops it: alerts, chains, issue status, merges, sessions, rules.

Hostile records — not JSON, not UTF-8, nested beyond the parsers, and well-formed records with values at
and beyond their columns' ranges — go to every topic before a valid record each; notify must stay up and
store every valid record.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.webhook_receiver import WebhookReceiver
from errstream_core.settings import Settings
from producers.synthetic import synthetic_alert
from schemas.chains import ChainEvent, ErrorChain
from schemas.issue_merge import IssueMergeChange
from schemas.issue_status import IssueStatusChange
from schemas.sessions import SessionAggregate
from tests.support.alerts import publish, query_rows
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e

JUNK = [b"\xff\xfe\x00garbage", b"{", b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 2_000 + b"1" + b"}" * 2_000,
        b"null", b"[]", b'"text"', b'{"fingerprint": 123456789012345678901234567890}']


def _far(record: dict[str, object], **fields: object) -> bytes:
    return json.dumps({**record, **fields}).encode()  # the stdlib writes integers of any size


def test_hostile_records_on_every_notify_topic_stop_nothing(settings: Settings, ch: Client, tmp_path: Path) -> None:
    fingerprint = uuid.uuid4().hex
    now = datetime.now(UTC).replace(microsecond=0)
    status = IssueStatusChange(fingerprint=fingerprint, status="acknowledged", changed_by="ana")
    merge = IssueMergeChange(fingerprint=fingerprint, primary=uuid.uuid4().hex, action="merge")
    session = SessionAggregate(service="poison-svc", minute=now.replace(second=0), started=5, errored=1)
    chain = ErrorChain(trace_id="ab" * 16, root_event_id=uuid.uuid4(), root_service="a", root_fingerprint=fingerprint,
                       started_at=now, ended_at=now, services=["a", "b"], event_count=2, events=[
                           ChainEvent(event_id=uuid.uuid4(), service=s, fingerprint=fingerprint, timestamp=now)
                           for s in ("a", "b")])
    alert = synthetic_alert(fingerprint=fingerprint)
    far_future, far_past = "9999-12-31T23:59:59Z", "1000-01-01T00:00:00Z"
    hostile = {
        settings.topic_issue_status: [_far(status.model_dump(mode="json"), changed_at=far_future),
                                      _far(status.model_dump(mode="json"), changed_at=far_past,
                                           ignore_until=far_future)],
        settings.topic_issue_merges: [_far(merge.model_dump(mode="json"), changed_at=far_past)],
        settings.topic_sessions: [_far(session.model_dump(mode="json"), minute=far_past),
                                  _far(session.model_dump(mode="json"), minute=far_future, started=10**12)],
        settings.chains_topic: [_far(chain.model_dump(mode="json"), started_at=far_past, ended_at=far_future),
                                _far(chain.model_dump(mode="json"), services=["s"] * 100_000)],
        settings.topic_alerts: [_far(alert.model_dump(mode="json"), created_at=far_past, alert_id=str(uuid.uuid4())),
                                _far(alert.model_dump(mode="json"), details={"n": 10**30},
                                     alert_id=str(uuid.uuid4()))],
        settings.topic_alert_rules: [b'{"text": 5}', b'{"text": "[[rules]]\\nname = 1"}'],
    }
    valid = {
        settings.topic_issue_status: status.model_dump_json().encode(),
        settings.topic_issue_merges: merge.model_dump_json().encode(),
        settings.topic_sessions: session.model_dump_json().encode(),
        settings.chains_topic: chain.model_dump_json().encode(),
        settings.topic_alerts: alert.model_dump_json().encode(),
    }
    with WebhookReceiver() as receiver:
        hooks = [{"name": "siem", "url": receiver.url(), "min_severity": "info"}]
        notify = Service("notify", settings, tmp_path,
                         extra_env={"ERRSTREAM_ALERT_WEBHOOKS": orjson.dumps(hooks).decode()}).start()
        _poison_every_topic(settings, ch, notify, fingerprint, alert.alert_id, hostile, valid)
        assert str(alert.alert_id) in [r.body["alert_id"] for r in receiver.ok()]


def _poison_every_topic(settings: Settings, ch: Client, notify: Service, fingerprint: str, alert_id: uuid.UUID,
                        hostile: dict[str, list[bytes]], valid: dict[str, bytes]) -> None:
    try:
        for topic, records in hostile.items():
            key = fingerprint.encode() if topic in (settings.topic_issue_status, settings.topic_issue_merges) \
                else b"alert-rules" if topic == settings.topic_alert_rules else None
            publish(settings, topic, JUNK + records + ([valid[topic]] if topic in valid else []), key=key)
        db = settings.clickhouse_database
        checks = {
            "issue status": f"SELECT count() FROM {db}.issue_status_history WHERE fingerprint = '{fingerprint}' "
                            "AND changed_by = 'ana' AND toYear(changed_at) < 2100 AND toYear(changed_at) > 2000",
            "merge": f"SELECT count() FROM {db}.issue_merge_history WHERE fingerprint = '{fingerprint}' "
                     "AND toYear(changed_at) > 2000",
            "sessions": f"SELECT sum(started) FROM {db}.session_counts_1m WHERE service = 'poison-svc' "
                        "AND toYear(minute) < 2100 AND toYear(minute) > 2000",
            "chain": f"SELECT count() FROM {db}.error_chains WHERE trace_id = '{'ab' * 16}' AND event_count = 2",
            "alert": f"SELECT count() FROM {db}.alerts WHERE alert_id = '{alert_id}'",
        }
        for what, sql in checks.items():
            wait_for(functools.partial(query_rows, ch, sql), lambda r: bool(r) and (r[0][0] or 0) >= 1, 120,
                     f"the valid {what} record stored after the hostile ones", diagnostics=notify.output)
        assert notify.running(), notify.output()
        assert "Traceback" not in notify.output()
    finally:
        notify.stop()


def test_a_far_future_session_minute_is_a_dead_letter_not_a_crash(settings: Settings, ch: Client,
                                                                  tmp_path: Path) -> None:
    """A value the ClickHouse client cannot serialise raises in the client; the record alone is refused."""
    session = SessionAggregate(service="far-svc", minute=datetime(2200, 1, 1, tzinfo=UTC), started=1)
    ok = SessionAggregate(service="far-svc", minute=datetime.now(UTC).replace(second=0, microsecond=0)
                          - timedelta(minutes=1), started=3)
    notify = Service("notify", settings, tmp_path, args=["--only", "sessions"]).start()
    try:
        publish(settings, settings.topic_sessions, [session.model_dump_json().encode(), ok.model_dump_json().encode()])
        sql = f"SELECT sum(started) FROM {settings.clickhouse_database}.session_counts_1m WHERE service = 'far-svc'"
        wait_for(lambda: query_rows(ch, sql), lambda r: bool(r) and r[0][0] == 3, 90, "the valid session stored",
                 diagnostics=notify.output)
        assert notify.running(), notify.output()
    finally:
        notify.stop()
