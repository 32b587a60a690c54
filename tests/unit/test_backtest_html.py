"""The backtest's HTML report: self-contained, one chart per rule and service, every label escaped."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from reports.backtest import BacktestRule, BandPoint, replay, run_backtest
from reports.backtest_html import MAX_CHARTS, _columns, render_html
from stream_processors.detection_rules.config import DetectionConfig

START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>&"\'><img src=//evil.example/x>'


def _steady(minutes: int, per_minute: int, *, burst_at: int | None = None) -> list[tuple[int, int]]:
    s = int(START.timestamp())
    counts = [(s + 60 * i, per_minute + (i % 3)) for i in range(minutes)]
    if burst_at is not None:
        counts[burst_at] = (counts[burst_at][0], per_minute * 15)
    return counts


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _page(rules: list[BacktestRule], counts: dict[str, list[tuple[int, int]]], hours: int = 6) -> tuple[str, list]:
    alerts = run_backtest(rules, counts)
    return render_html(rules, counts, alerts, START, START + timedelta(hours=hours)), alerts


def test_each_rule_draws_each_service_with_its_band_and_its_alerts() -> None:
    base = DetectionConfig()
    rules = [BacktestRule("today", base), BacktestRule("deaf", replace(base, spike=replace(base.spike, factor=50)))]
    counts = {"checkout": _steady(360, 20, burst_at=200), "search": _steady(360, 20)}
    page, alerts = _page(rules, counts)
    assert [(a.rule, a.service, a.pattern) for a in alerts] == [("today", "checkout", "burst")]
    parsed = _Tags()
    parsed.feed(page)
    assert sum(1 for t, _ in parsed.tags if t == "svg") == 4  # 2 rules × 2 services
    assert sum(1 for t, a in parsed.tags if t == "circle" and "burst" in (a.get("class") or "")) == 1
    assert sum(1 for t, a in parsed.tags if t == "polygon" and a.get("class") == "band") == 4
    today = page.split('id="rule-today"')[1].split('id="rule-deaf"')[0]
    assert today.index("checkout") < today.index("search")  # the service that alerted first
    assert "seen 300, expected" in page  # the marker's tooltip
    assert "Rule deaf: 0 alerts" in page


def test_the_page_loads_nothing_and_runs_nothing() -> None:
    page, _ = _page([BacktestRule("today", DetectionConfig())], {"checkout": _steady(120, 20, burst_at=90)}, hours=2)
    parsed = _Tags()
    parsed.feed(page)
    tags = {t for t, _ in parsed.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert not any(k in ("src", "href") and v and not v.startswith("#") for _, a in parsed.tags for k, v in a.items())
    assert "default-src 'none'" in page and "http://" not in page and "https://" not in page
    assert not any(k.startswith("on") for _, a in parsed.tags for k in a)


def test_every_label_is_escaped() -> None:
    base = DetectionConfig()
    counts = {HOSTILE: _steady(240, 20, burst_at=150)}
    page, alerts = _page([BacktestRule(HOSTILE[:60], base)], counts, hours=4)
    assert alerts and HOSTILE in alerts[0].title  # the alert's title names the service
    parsed = _Tags()
    parsed.feed(page)
    assert {t for t, _ in parsed.tags} <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p",
                                           "span", "i", "code", "table", "tr", "th", "td", "a", "svg", "polygon",
                                           "polyline", "line", "text", "circle", "rect"}
    assert "<script" not in page and "<img" not in page
    assert any(HOSTILE in t for t in parsed.text)  # shown as text, intact


def test_a_long_window_is_drawn_in_bounded_columns_and_charts() -> None:
    counts = {f"svc{i:02d}": _steady(60, 5) for i in range(MAX_CHARTS + 3)}
    page, _ = _page([BacktestRule("today", DetectionConfig())], counts, hours=24 * 14)
    assert page.count("<svg") == MAX_CHARTS and "3 quieter services without alerts are not drawn" in page
    step, peak, expected, threshold = _columns(_steady(60, 5), [], int(START.timestamp()), 14 * 24 * 60)
    assert step == 34 and len(peak) <= 600 and len(expected) == len(peak)
    points = max(len(m.group(1).split()) for m in re.finditer(r'class="counts"[^>]*points="([^"]*)"', page))
    assert points <= 600


def test_the_band_is_what_the_detector_expected_when_the_minute_arrived() -> None:
    band: list[BandPoint] = []
    replay(BacktestRule("today", DetectionConfig()), "checkout", _steady(60, 20), band)
    assert len(band) == 60
    warm = [(p.expected, p.threshold) for p in band if p.threshold is not None]
    assert warm and all(t >= e for e, t in warm)
    assert 15 <= warm[-1][0] <= 25 and warm[-1][1] >= 60  # 3× the expectation at least
