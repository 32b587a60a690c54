"""Alert e-mails, end to end: the real `errstream notify`, a real SMTP server with STARTTLS and AUTH."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from producers.synthetic import synthetic_alert as make_alert
from tests.support.alerts import publish_alerts, query_rows
from tests.support.services import Service, wait_for
from tests.support.smtp import LocalSMTP

pytestmark = pytest.mark.e2e


def _destination(smtp: LocalSMTP, **kw: object) -> dict[str, object]:
    return {"name": "oncall-mail", "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "security": "starttls",
            "username": smtp.user, "password": smtp.password, "sender": "errstream@example.com",
            "recipients": ["oncall@example.com"], "ca_file": str(smtp.ca_file), "min_severity": "info",
            "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.2, **kw}


def test_an_alert_email_arrives_with_subject_body_and_link(settings: Settings, ch: Client, tmp_path: Path) -> None:
    with LocalSMTP(tmp_path) as smtp:
        env = {"ERRSTREAM_ALERT_EMAILS": orjson.dumps([_destination(smtp)]).decode(),
               "ERRSTREAM_WEB_BASE_URL": "https://errors.example.com"}
        notify = Service("notify", settings, tmp_path, extra_env=env).start()
        try:
            alert = make_alert(kind="new_issue", severity="error", title="KeyError: 'cus_1234'",
                               message="New issue in billing: KeyError: 'cus_1234'")
            publish_alerts(settings, [alert])
            wait_for(lambda: len(smtp.messages), lambda n: n >= 1, 90, "the alert e-mail", diagnostics=notify.output)
            message = smtp.messages[0]
            assert message["Subject"] == "[ERROR] New issue in billing: KeyError: 'cus_1234'"
            assert message["To"] == "oncall@example.com" and message["Message-ID"] == f"<alert-{alert.alert_id}@errstream>"
            text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
            assert "New issue in billing: KeyError: 'cus_1234'" in text
            assert f"Issue:       {alert.fingerprint}" in text and "First seen:" in text and "Culprit:" in text
            assert f"https://errors.example.com/issues/{alert.fingerprint}" in text
            assert f"href='https://errors.example.com/issues/{alert.fingerprint}'" in html
            rows = wait_for(lambda: query_rows(ch, f"SELECT destination, outcome FROM {settings.clickhouse_database}"
                                                   ".alert_deliveries"), lambda r: len(r) >= 1, 30, "delivery row")
            assert rows == [("oncall-mail", "delivered")]
        finally:
            notify.stop()


def test_a_wrong_password_is_rejected_once_and_recorded(settings: Settings, ch: Client, tmp_path: Path) -> None:
    with LocalSMTP(tmp_path) as smtp:
        env = {"ERRSTREAM_ALERT_EMAILS": orjson.dumps([_destination(smtp, password="wrong")]).decode()}
        notify = Service("notify", settings, tmp_path, extra_env=env).start()
        try:
            publish_alerts(settings, [make_alert(severity="critical")])
            rows = wait_for(lambda: query_rows(ch, f"SELECT outcome, http_status, error FROM "
                                                   f"{settings.clickhouse_database}.alert_deliveries"),
                            lambda r: len(r) >= 1, 90, "a delivery row", diagnostics=notify.output)
            assert rows[0][:2] == ("rejected", 535) and "wrong" not in rows[0][2]
            assert smtp.messages == []
        finally:
            notify.stop()
