"""`errstream issue merge|unmerge` on the real stack: worker, sink and notify processes, the real broker and
ClickHouse. A merged group is one row in the views, the issue stream, the report and `issue list`, and raises
one alert; unmerging restores separate rows and separate alerts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from reports.issue_queries.models import IssueFilter
from reports.issue_queries.queries import IssueQueries
from reports.report import build_report
from schemas.issue_merge import IssueMergeChange
from tests.support.alerts import publish as raw_publish
from tests.support.alerts import query_rows
from tests.support.cli import cli
from tests.support.detection import alerts, caught_up, committed, error, of_kind, publish, wait_alerts
from tests.support.kafka import read_topic
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e


def groups(ch: Client, settings: Settings) -> dict[str, tuple[int, list[str]]]:
    """v_error_groups: issue → (events, member fingerprints)."""
    return {fp: (int(n), list(m)) for fp, n, m in query_rows(
        ch, f"SELECT fingerprint, events, members FROM {settings.clickhouse_database}.v_error_groups")}


def regressions(settings: Settings) -> dict[str, str]:
    """The regression alerts on the topic: alert id → fingerprint (an alert sent twice is one id)."""
    return {a["alert_id"]: a["fingerprint"] for a in of_kind(alerts(settings), "regression")}


def applied(settings: Settings, topic: str, before: int, records: int, what: str) -> None:
    """Wait until the worker's detection committed past ``records`` more records of ``topic``."""
    wait_for(lambda: committed(settings, topic), lambda n: n >= before + records, 60, what)


def ok(done: Any) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return str(done.stdout)


def test_merged_issues_are_one_row_and_one_alert_and_unmerge_restores_both(
    settings: Settings, ch: Client, tmp_path: Path,
) -> None:
    services = [Service(name, settings, tmp_path).start() for name in ("worker", "sink", "notify")]
    logs: Callable[[], str] = lambda: "\n".join(s.output()[-1500:] for s in services)  # noqa: E731
    try:
        now = datetime.now(UTC)
        publish(settings, [error("billing", "charge", now + timedelta(milliseconds=i)) for i in range(2)]
                + [error("billing", "refund", now + timedelta(milliseconds=i)) for i in range(3)])
        got = wait_alerts(settings, lambda a: len(of_kind(a, "new_issue")) >= 2, what="two new issues",
                          diagnostics=logs)
        fp = {a["title"].split(": ")[-1]: a["fingerprint"] for a in of_kind(got, "new_issue")}
        charge, refund = fp["charge failed"], fp["refund failed"]
        wait_for(lambda: groups(ch, settings), lambda g: g.get(charge, (0,))[0] == 2 and g.get(refund, (0,))[0] == 3,
                 90, "both issues in v_error_groups", diagnostics=logs)

        # hostile requests are refused with a reason, nothing published
        for args, reason in [((charge, charge), "cannot be merged into itself"),
                             ((charge, "f" * 32), "no such issue"), ((charge,), "cannot be merged into itself")]:
            done = cli(settings, "issue", "merge", *args)
            assert done.returncode == 2 and reason in done.stderr, done.stdout + done.stderr
        assert "is not merged" in cli(settings, "issue", "unmerge", refund).stderr
        # hostile records on the merge topic itself (not written by errstream): refused, counted, never applied
        hostile = IssueMergeChange(fingerprint=refund, primary=charge, action="merge").model_dump(mode="json")
        hostile["primary"] = refund  # a self-merge, which the model refuses
        raw_publish(settings, settings.topic_issue_merges, [b"not json", orjson.dumps(hostile)], key=refund.encode())

        before = committed(settings, settings.topic_issue_merges)
        out = ok(cli(settings, "issue", "merge", charge, refund[:12], "--by", "alice", "--note", "one bug"))
        assert f"{refund} → merged into {charge} by alice: one bug" in out
        applied(settings, settings.topic_issue_merges, before, 3, "detection to apply the merge")
        dead = read_topic(settings, settings.topic_dlq, expect=2, timeout=60)
        assert [(d["stage"], d["source_topic"]) for d in dead] == [("merges-decode", settings.topic_issue_merges)] * 2

        # one row everywhere, counts summed: the view, the issue stream, the report
        wait_for(lambda: groups(ch, settings), lambda g: g == {charge: (5, sorted([charge, refund]))}, 60,
                 "one merged row in v_error_groups", diagnostics=logs)
        page = IssueQueries(ch, settings.clickhouse_database).list_issues(IssueFilter())
        assert [(i.fingerprint, i.events, i.title) for i in page.issues] == [(charge, 5, "RuntimeError: charge failed")]
        detail = IssueQueries(ch, settings.clickhouse_database).issue(refund)  # a member's page is its group's
        assert detail is not None and detail.fingerprint == charge and detail.events == 5
        assert [(m.action, m.fingerprint, m.primary, m.changed_by) for m in detail.merges] == [
            ("merge", refund, charge, "alice")]
        report = build_report(ch, settings.clickhouse_database, "1h")
        assert [(r.fingerprint, r.events) for r in report.top_issues] == [(charge, 5)]
        assert report.overview.issues == 1 and [(s.service, s.issues) for s in report.by_service] == [("billing", 1)]
        assert IssueQueries(ch, settings.clickhouse_database).list_issues(IssueFilter(q=refund)).issues[0].fingerprint \
            == charge  # a member's fingerprint finds its group

        # a resolution of the group reaches its members: a member's event regresses the group, once
        before = committed(settings, settings.topic_issue_status)
        out = ok(cli(settings, "issue", "resolve", charge, "--by", "bob"))
        assert f"and {refund} (same merged issue)" in out
        applied(settings, settings.topic_issue_status, before, 2, "detection to apply the group's resolution")
        publish(settings, [error("billing", "refund", datetime.now(UTC))])
        wait_alerts(settings, lambda a: len(of_kind(a, "regression")) >= 1, what="the group's regression",
                    diagnostics=logs)
        publish(settings, [error("billing", "charge", datetime.now(UTC))])
        wait_for(lambda: len(alerts(settings)), lambda n: n >= 4, 60, "the primary's event through detection")
        caught_up(settings)  # every alert this input can raise is on the topic now
        assert set(regressions(settings).values()) == {charge} and len(regressions(settings)) == 1
        stored = wait_for(lambda: query_rows(ch, f"SELECT fingerprint FROM {settings.clickhouse_database}.alerts "
                                                 "FINAL WHERE kind = 'regression'"), lambda r: len(r) >= 1, 60,
                          "the regression stored by notify")
        assert stored == [(charge,)]
        listed = ok(cli(settings, "issue", "list"))
        assert charge in listed and refund not in listed and "+1" in listed

        # unmerge (of the primary: the whole group): separate rows again, and separate alerts afterwards
        before = committed(settings, settings.topic_issue_merges)
        out = ok(cli(settings, "issue", "unmerge", charge, "--by", "carol"))
        assert f"{refund} → its own issue again by carol" in out
        applied(settings, settings.topic_issue_merges, before, 1, "detection to apply the unmerge")
        wait_for(lambda: groups(ch, settings), lambda g: g == {charge: (3, [charge]), refund: (4, [refund])}, 60,
                 "two rows again in v_error_groups", diagnostics=logs)
        page = IssueQueries(ch, settings.clickhouse_database).list_issues(IssueFilter())
        assert sorted((i.fingerprint, i.events) for i in page.issues) == sorted([(charge, 3), (refund, 4)])
        assert build_report(ch, settings.clickhouse_database, "1h").overview.issues == 2
        shown = ok(cli(settings, "issue", "status", refund))
        assert "merge" in shown and "unmerge" in shown and "alice" in shown and "carol" in shown

        before = committed(settings, settings.topic_issue_status)
        out = ok(cli(settings, "issue", "resolve", refund, "--by", "dave"))
        assert "same merged issue" not in out
        applied(settings, settings.topic_issue_status, before, 1, "detection to apply refund's own resolution")
        publish(settings, [error("billing", "refund", datetime.now(UTC))])
        wait_for(lambda: regressions(settings), lambda r: len(r) >= 2, 60, "refund's own regression",
                 diagnostics=logs)
        assert sorted(regressions(settings).values()) == sorted([charge, refund])
    finally:
        for s in services:
            s.stop()
