"""`errstream issue` takes the short fingerprints reports show; `report` tells a missing schema from a down server.

Real Kafka and embedded ClickHouse; the issues are rows of the real `error_groups` table after `migrate`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.process import free_port
from errstream_core.settings import Settings
from sinks.clickhouse.migrate import migrate
from tests.support.cli import cli as run_cli
from tests.support.kafka import read_topic
from tests.support.services import settings_env

pytestmark = pytest.mark.e2e


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(settings, *args, server_timeout=20)


def two_issues_sharing_12_characters(settings: Settings, ch: Client) -> tuple[str, str]:
    migrate(settings, ch)
    shared = uuid.uuid4().hex[:12]
    first, second = shared + "0" + uuid.uuid4().hex[:19], shared + "f" + uuid.uuid4().hex[:19]
    now = datetime.now(UTC)  # the table's TTL drops rows last seen long ago
    ch.insert(f"{settings.clickhouse_database}.error_groups",
              [[first, "KeyError: 'user'", 3, now, now], [second, "TimeoutError: upstream", 5, now, now]],
              column_names=["fingerprint", "title", "events", "first_seen", "last_seen"])
    return first, second


def test_issue_commands_accept_a_unique_prefix_and_refuse_ambiguous_or_unknown_ones(
    settings: Settings, ch: Client,
) -> None:
    first, second = two_issues_sharing_12_characters(settings, ch)

    ambiguous = cli(settings, "issue", "status", first[:12])
    assert ambiguous.returncode == 2
    assert "ambiguous" in ambiguous.stderr and first in ambiguous.stderr and second in ambiguous.stderr

    shown = cli(settings, "issue", "status", first[:13].upper())
    assert shown.returncode == 0, shown.stderr
    assert f"{first}: new (no status change recorded)" in shown.stdout

    resolved = cli(settings, "issue", "resolve", second[:13], "--by", "dana", "-m", "fixed upstream timeout")
    assert resolved.returncode == 0, resolved.stderr
    assert second in resolved.stdout
    [change] = read_topic(settings, settings.topic_issue_status, expect=1, timeout=30)
    assert (change["fingerprint"], change["status"], change["changed_by"]) == (second, "resolved", "dana")

    unknown_prefix = cli(settings, "issue", "ack", "deadbeef00")
    assert unknown_prefix.returncode == 1
    assert "no issue has a fingerprint starting with deadbeef00" in unknown_prefix.stderr

    too_short = cli(settings, "issue", "ack", first[:7])
    assert too_short.returncode == 2 and "8 or more" in too_short.stderr


def test_issue_status_of_an_unknown_fingerprint_says_there_is_no_such_issue(settings: Settings, ch: Client) -> None:
    two_issues_sharing_12_characters(settings, ch)
    unknown = uuid.uuid4().hex
    done = cli(settings, "issue", "status", unknown)
    assert done.returncode == 1
    assert f"no such issue {unknown}" in done.stderr
    assert "new" not in done.stdout


def test_report_on_a_database_without_the_schema_says_to_run_migrate(settings: Settings, ch: Client) -> None:
    done = cli(settings, "report")  # the per-test database was never migrated
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "has no errstream tables" in output and "run `errstream migrate`" in output
    assert "unreachable" not in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_a_resolved_issue_seen_again_reads_regressed_in_the_issue_cli_and_the_view(
    settings: Settings, ch: Client,
) -> None:
    first, second = two_issues_sharing_12_characters(settings, ch)  # both last seen now
    db = settings.clickhouse_database
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    ch.insert(f"{db}.issue_status_history",
              [[first, "resolved", an_hour_ago, "erin", "fixed in 2.3"], [second, "resolved", in_an_hour, "erin", ""]],
              column_names=["fingerprint", "status", "changed_at", "changed_by", "note"])

    shown = cli(settings, "issue", "status", first[:13])
    assert shown.returncode == 0, shown.stderr
    line = shown.stdout.splitlines()[0]
    assert line.startswith(f"{first}: regressed: resolved ") and "by erin — fixed in 2.3, seen again " in line

    regressed = cli(settings, "issue", "list", "--status", "regressed")
    assert first in regressed.stdout and second not in regressed.stdout
    resolved = cli(settings, "issue", "list", "--status", "resolved")
    assert second in resolved.stdout and first not in resolved.stdout

    view = {fp: (status, is_open) for fp, status, is_open in
            ch.query(f"SELECT fingerprint, status, is_open FROM {db}.v_error_groups").result_rows}
    assert view == {first: ("regressed", 1), second: ("resolved", 0)}


@pytest.mark.parametrize("command", ["sink", "notify"])
def test_services_with_clickhouse_up_and_kafka_down_exit_with_one_line(clickhouse_url: str, command: str) -> None:
    settings = Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"errstream_k{uuid.uuid4().hex[:10]}",
                        kafka_bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    env = {**os.environ, **settings_env(settings), "ERRSTREAM_METRICS_PORT": "0", "COLUMNS": "250"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "errstream.cli", "--timeout", "3", command], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.monotonic() - started
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, output
    assert output.splitlines()[-1].startswith(f"error: Kafka at {settings.kafka_bootstrap} is unreachable"), output
    assert "errstream local up" in output and "Traceback" not in output
    assert len(output.splitlines()) <= 3, output  # at most the client's one "cannot connect" line before it
    assert elapsed < 3 + 40, f"took {elapsed:.1f} s"
