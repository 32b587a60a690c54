"""``errstream detect backtest`` on a real ClickHouse: stored per-minute counts through the spike detector."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from sinks.clickhouse.migrate import migrate
from tests.support.cli import cli

COLUMNS = ["minute", "service", "environment", "fingerprint", "level", "events", "stored"]


def _minutes(service: str, start: datetime, counts: list[int]) -> list[list[object]]:
    """Rows of ``error_counts_1m``: each minute's count split over two issues, as the sink writes them."""
    rows: list[list[object]] = []
    for i, n in enumerate(counts):
        at = start + timedelta(minutes=i)
        rows += [[at, service, "prod", "a" * 32, "error", n - n // 3, n - n // 3],
                 [at, service, "prod", "b" * 32, "error", n // 3, n // 3]]
    return rows


def test_backtest_lists_what_each_rule_would_have_raised(settings: Settings, ch: Client, tmp_path: Path) -> None:
    migrate(settings)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(hours=6)
    minutes = 6 * 60 - 5
    steady = [20 + (i % 3) for i in range(minutes)]  # 20–22 errors/min
    checkout = list(steady)
    burst_at, rise_at = 120, 240
    checkout[burst_at] = 300  # a one-minute burst, 15×
    for i in range(rise_at, rise_at + 10):
        checkout[i] = 55  # a sustained rise (2.6×) for 10 minutes, no single minute of it a burst
    rows = _minutes("checkout", start, checkout) + _minutes("search", start, steady)
    ch.insert(f"{settings.clickhouse_database}.error_counts_1m", rows, column_names=COLUMNS)

    out = cli(settings, "detect", "backtest", "--since", "1d", "--json")
    assert out.returncode == 0, out.stderr
    alerts = json.loads(out.stdout)
    assert [(a["rule"], a["service"], a["pattern"]) for a in alerts] == [
        ("settings", "checkout", "burst"), ("settings", "checkout", "sustained")], alerts
    assert alerts[0]["minute"] == (start + timedelta(minutes=burst_at)).isoformat() and alerts[0]["count"] == 300
    assert 15 <= alerts[0]["expected"] <= 25
    rise_minute = datetime.fromisoformat(alerts[1]["minute"])
    assert start + timedelta(minutes=rise_at) <= rise_minute < start + timedelta(minutes=rise_at + 5)

    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "default"\n\n[[rule]]\nname = "deaf"\nfactor = 20\nrise_factor = 5\n')
    out = cli(settings, "detect", "backtest", "--since", "1d", "--rules", str(rules))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "rule default: 2 alerts (1 bursts, 1 sustained rises)" in text
    assert "rule deaf: 0 alerts" in text
    assert "checkout" in text and "^" in text  # the plot marks the alerts' hours
    assert "search" not in text.split("rule default")[1]  # the steady service raised nothing

    report = tmp_path / "backtest.html"
    out = cli(settings, "detect", "backtest", "--since", "1d", "--rules", str(rules), "--html", str(report))
    assert out.returncode == 0, out.stderr
    assert f"wrote {report} (2 alerts, 2 services)" in " ".join(out.stderr.split())
    page = report.read_text(encoding="utf-8")
    assert page.count("<svg") == 4  # 2 rules × 2 services
    assert page.count('class="alert burst"') == 1 and page.count('class="alert sustained"') == 1
    assert "<script" not in page and "default-src 'none'" in page
    assert "Rule default: 2 alerts" in page and "Rule deaf: 0 alerts" in page

    rules.write_text('[[rule]]\nname = "typo"\nfactr = 4\n')
    out = cli(settings, "detect", "backtest", "--rules", str(rules))
    assert out.returncode == 2 and "unknown key 'factr'" in out.stdout + out.stderr
    out = cli(settings, "detect", "backtest", "--since", "52w")
    assert out.returncode == 2 and "at most 31d" in out.stdout + out.stderr
    rules.write_text('[[rule]]\nfactor = "high"\n')
    out = cli(settings, "detect", "backtest", "--rules", str(rules))
    assert out.returncode == 2 and "factor must be a number" in out.stdout + out.stderr
