"""`errstream report` against the known history: numbers, filters, JSON and HTML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from rich.console import Console

from reports.html import render_html
from reports.report import bucket_label, bucket_seconds, build_report, parse_since
from reports.terminal import render
from tests.e2e.analytics.data import Dataset, fp


def test_since_parsing_and_bucket_choice() -> None:
    assert parse_since("90m") == timedelta(minutes=90)
    assert parse_since("7d") == timedelta(days=7)
    for bad in ("", "5x", "10s", "-1h"):
        with pytest.raises(ValueError):
            parse_since(bad)
    assert bucket_seconds(timedelta(hours=1)) == 60
    assert bucket_seconds(timedelta(hours=24)) == 900
    assert bucket_seconds(timedelta(days=7)) == 3 * 3600


def test_report_of_the_last_day(loaded: tuple[Client, Dataset]) -> None:
    client, ds = loaded
    r = build_report(client, str(client.database), "24h", now=ds.now)
    o = r.overview
    assert (o.events, o.issues, o.new_issues, o.users, o.critical, o.previous_events) == (468, 5, 2, 120, 10, 50)
    assert o.stored == 75 + 150 + 10 + 5 + 3 and o.services == 3
    assert o.change_pct == 836.0  # (468 - 50) / 50
    assert [i.fingerprint for i in r.top_issues] == [fp(k) for k in "AGBCE"]
    a = r.top_issues[0]
    assert (a.title, a.events, a.previous_events, a.users, a.is_new) == ("KeyError: 'cart_id'", 300, 40, 20, False)
    assert [(i.fingerprint, i.status) for i in r.top_issues if i.is_new] == [(fp("G"), "new"), (fp("B"), "investigating")]
    assert sum(p.events for p in r.timeline) == 468
    assert sum(p.critical for p in r.timeline) == 10
    assert r.window_start == (ds.now - timedelta(hours=24)).replace(minute=0)  # long windows: whole hours
    b = r.bucket_seconds
    assert b == 900 and len(r.timeline) == r.window_end.timestamp() // b - r.window_start.timestamp() // b + 1
    assert {s.service: (s.events, s.previous_events, s.change_pct) for s in r.by_service} == {
        "checkout": (451, 40, 1027.5), "billing": (12, 0, None), "auth": (5, 10, -50.0)}
    assert [(s.kind, s.service) for s in r.spikes] == [("spike", "checkout")]
    assert [(c.root_service, c.services, c.event_count, c.duration_ms) for c in r.chains] == [
        ("billing", ["billing", "checkout"], 3, 2000)]


def test_service_filter_and_short_window(loaded: tuple[Client, Dataset]) -> None:
    client, ds = loaded
    r = build_report(client, str(client.database), "24h", service="billing", top=1, now=ds.now)
    assert (r.overview.events, r.overview.issues, r.overview.critical) == (12, 2, 10)
    assert [i.fingerprint for i in r.top_issues] == [fp("B")]
    assert [s.service for s in r.by_service] == ["billing"]
    assert r.spikes == [] and len(r.chains) == 1  # the chain passes through billing
    hour = build_report(client, str(client.database), "1h", now=ds.now)
    assert hour.bucket_seconds == 60 and len(hour.timeline) == 61
    # The last hour saw only E's regression (3 events); the hour before, part of A's burst.
    minutes = [ds.ts(p).replace(second=0, microsecond=0) for p in ds.processed]
    previous_hour = sum(ds.now - timedelta(hours=2) <= m < ds.now - timedelta(hours=1) for m in minutes)
    assert hour.overview.events == 3 and hour.overview.previous_events == previous_hour
    assert 0 < previous_hour < 300
    week = build_report(client, str(client.database), "7d", now=ds.now)
    assert week.overview.events == 468 + 40 + 10 + 6 and week.overview.previous_events == 8


def test_terminal_and_html_rendering(loaded: tuple[Client, Dataset]) -> None:
    client, ds = loaded
    r = build_report(client, str(client.database), "24h", now=ds.now)
    console = Console(width=140, record=True, color_system=None)
    render(r, console)
    text = console.export_text()
    for needle in ("468 events", "+836.0%", "KeyError: 'cart_id'", "billing → checkout", "█", "checkout"):
        assert needle in text
    assert f"events per {bucket_label(r.bucket_seconds)} " in text and " 1 " not in bucket_label(r.bucket_seconds)
    page = render_html(r)
    assert f"<h2>Events per {bucket_label(r.bucket_seconds)}</h2>" in page
    assert page.count("<svg") == 3 and "<script" not in page and "src=" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert "KeyError: &#x27;cart_id&#x27;" in page  # escaped


def test_cli_json_and_html(loaded: tuple[Client, Dataset], clickhouse_url: str, tmp_path: Path) -> None:
    client, _ = loaded
    env = {**os.environ, "ERRSTREAM_CLICKHOUSE_URL": clickhouse_url,
           "ERRSTREAM_CLICKHOUSE_DATABASE": str(client.database)}
    page = tmp_path / "report.html"
    out = subprocess.run(
        [sys.executable, "-m", "errstream.cli", "report", "--since", "2d", "--json", "--html", str(page)],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    data = json.loads(out.stdout)
    assert data["overview"]["events"] == 468 + 50 and data["since"] == "2d"
    assert page.read_text().startswith("<!doctype html>")
    bad = subprocess.run([sys.executable, "-m", "errstream.cli", "report", "--since", "soon"],
                         check=False, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--since must look like" in bad.stdout


def test_a_regressed_issue_reads_regressed_not_resolved(loaded: tuple[Client, Dataset]) -> None:
    """C was resolved 10 h ago and seen again since: the report must not call it resolved."""
    client, ds = loaded
    r = build_report(client, str(client.database), "30d", top=20, now=ds.now)
    statuses = {i.fingerprint: i.status for i in r.top_issues}
    assert statuses[fp("C")] == "regressed" and statuses[fp("D")] == "resolved"
    console = Console(width=200, record=True, color_system=None)
    render(r, console)
    assert "regressed" in console.export_text() and "regressed" in render_html(r)


def test_bucket_labels_read_as_spoken() -> None:
    assert [bucket_label(s) for s in (60, 300, 3_600, 21_600, 86_400, 30)] == [
        "minute", "5 minutes", "hour", "6 hours", "day", "30 seconds"]
