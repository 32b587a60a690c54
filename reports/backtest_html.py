"""``errstream detect backtest --html FILE``: the backtest as one self-contained HTML page.

Per rule, a chart per service (the services that alerted first): its events per minute over the window,
the band the detector expected them in (from its expectation to its burst threshold, as they stood when
each minute's events arrived), and a marker at each alert it would have raised, with the alert's text as
its tooltip. The charts are inline SVG; the page has no script, loads nothing (its Content-Security-Policy
allows no source at all, inline styles apart) and every label (service names, rule names, alert titles:
data someone else wrote) is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from reports.backtest import BacktestAlert, BacktestRule, BandPoint, replay

MAX_POINTS = 600  # columns per chart: a 14-day window is drawn at 34 minutes per column
MAX_CHARTS = 24  # charts per rule: the services that alerted first, then the busiest
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 960, 170, 56, 22, 8

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2937;max-width:1040px}
h1{font-size:20px}h2{font-size:17px;margin-top:32px;border-top:1px solid #e5e7eb;padding-top:12px}
h3{font-size:14px;margin:18px 0 4px}table{border-collapse:collapse;font-size:13px}
td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}.n{text-align:right}.muted{color:#6b7280}
svg{display:block;background:#fff;border:1px solid #e5e7eb}.legend span{margin-right:14px}
.sw{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:middle}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _when(minute: int) -> str:
    return f"{datetime.fromtimestamp(minute, UTC):%Y-%m-%d %H:%M} UTC"


def _columns(counts: list[tuple[int, int]], band: list[BandPoint], start: int, minutes: int
             ) -> tuple[int, list[int], list[float | None], list[float | None]]:
    """(minutes per column, busiest minute of each column, mean expectation, mean threshold): the band of a
    column without events is the last one known (the detector's view does not change without events)."""
    step = max(1, math.ceil(minutes / MAX_POINTS))
    n = math.ceil(minutes / step)
    peak = [0] * n
    for minute, c in counts:
        col = (minute - start) // 60 // step
        if 0 <= col < n:
            peak[col] = max(peak[col], c)
    sums: list[list[float]] = [[0.0, 0.0, 0.0, 0.0] for _ in range(n)]  # expected sum, n, threshold sum, n
    for p in band:
        col = (p.minute - start) // 60 // step
        if 0 <= col < n:
            sums[col][0] += p.expected
            sums[col][1] += 1
            if p.threshold is not None:
                sums[col][2] += p.threshold
                sums[col][3] += 1
    expected: list[float | None] = []
    threshold: list[float | None] = []
    last_e: float | None = None
    last_t: float | None = None
    for es, en, ts, tn in sums:
        last_e = es / en if en else last_e
        last_t = ts / tn if tn else (None if en else last_t)
        expected.append(last_e)
        threshold.append(last_t)
    return step, peak, expected, threshold


def chart(service: str, counts: list[tuple[int, int]], band: list[BandPoint], alerts: Sequence[BacktestAlert],
          start: int, end: int) -> str:
    """One service's inline SVG: events per minute (the busiest minute of each column), the expected band,
    alert markers (burst: a red circle; sustained rise: an orange square), day ticks."""
    minutes = max(1, (end - start) // 60)
    step, peak, expected, threshold = _columns(counts, band, start, minutes)
    n = len(peak)
    seen = max([*peak, *(e for e in expected if e is not None), *(float(a.count) for a in alerts if a.pattern == "burst"),
                1.0])
    # the threshold too, as far as three times the traffic (a small service's floor of 20 would flatten it)
    top = max(seen, min(max((t for t in threshold if t is not None), default=0.0), 3 * seen)) * 1.1
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP

    def x(col: float) -> float:
        return LEFT + plot_w * col / max(1, n)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - min(v, top) / top)

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
             f'aria-label="{_e(service)}: events per minute, expected band and alerts">']
    # the band: expected → burst threshold, one quad per run of columns that have both
    upper = [(x(i), y(t)) for i, t in enumerate(threshold) if t is not None]
    lower = [(x(i), y(e)) for i, (e, t) in enumerate(zip(expected, threshold, strict=True)) if t is not None and e is not None]
    if upper and len(upper) == len(lower):
        pts = upper + list(reversed(lower))
        parts.append('<polygon class="band" fill="#fde68a" fill-opacity="0.6" stroke="none" points="'
                     + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
    exp_pts = [(x(i + 0.5), y(e)) for i, e in enumerate(expected) if e is not None]
    if exp_pts:
        parts.append('<polyline class="expected" fill="none" stroke="#b45309" stroke-width="1" points="'
                     + " ".join(f"{a:.1f},{b:.1f}" for a, b in exp_pts) + '"/>')
    parts.append('<polyline class="counts" fill="none" stroke="#1d4ed8" stroke-width="1.2" points="'
                 + " ".join(f"{x(i + 0.5):.1f},{y(v):.1f}" for i, v in enumerate(peak)) + '"/>')
    # axes: 0 and the top, a tick at each day's start
    parts.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#9ca3af"/>')
    parts.append(f'<text x="{LEFT - 6}" y="{TOP + plot_h}" font-size="10" text-anchor="end">0</text>')
    parts.append(f'<text x="{LEFT - 6}" y="{TOP + 10}" font-size="10" text-anchor="end">{top:,.0f}/min</text>')
    first_day = (start // 86_400 + 1) * 86_400
    days = range(first_day, end, 86_400)
    every = max(1, math.ceil(len(days) / 14))
    for k, day in enumerate(days):
        if k % every:
            continue
        col = (day - start) / 60 / step
        parts.append(f'<line x1="{x(col):.1f}" y1="{TOP}" x2="{x(col):.1f}" y2="{TOP + plot_h}" stroke="#f3f4f6"/>'
                     f'<text x="{x(col):.1f}" y="{HEIGHT - 6}" font-size="10" text-anchor="middle">'
                     f'{datetime.fromtimestamp(day, UTC):%m-%d}</text>')
    for a in alerts:
        col = (a.minute - start) / 60 / step
        cx, cy = x(col), y(a.count if a.pattern == "burst" else peak[min(n - 1, max(0, int(col)))])
        tip = (f"<title>{_e(_when(a.minute))}: {_e(a.pattern)}, seen {a.count:,}, expected {a.expected:,.1f} — "
               f"{_e(a.title)}</title>")
        if a.pattern == "burst":
            parts.append(f'<circle class="alert burst" cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="#dc2626">{tip}</circle>')
        else:
            parts.append(f'<rect class="alert sustained" x="{cx - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" '
                         f'fill="#ea580c">{tip}</rect>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(rules: list[BacktestRule], counts: dict[str, list[tuple[int, int]]], alerts: list[BacktestAlert],
                start: datetime, end: datetime) -> str:
    """The whole page. The bands are replayed here (the same replay as the alerts, keeping what it expected)."""
    s, e = int(start.timestamp()), int(end.timestamp())
    total = sum(n for c in counts.values() for _, n in c)
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
           f"<title>errstream backtest {_e(f'{start:%Y-%m-%d %H:%M}')} – {_e(f'{end:%Y-%m-%d %H:%M}')} UTC</title>",
           f"<style>{_STYLE}</style></head><body>",
           f"<h1>Backtest {_e(f'{start:%Y-%m-%d %H:%M}')} – {_e(f'{end:%Y-%m-%d %H:%M}')} UTC</h1>",
           f"<p>{len(counts):,} services, {total:,} events (ClickHouse <code>error_counts_1m</code>), replayed minute "
           "by minute through the worker's spike detector, once per rule. Each replay starts with no history, so "
           "the first day is the profile's learning day.</p>",
           '<p class="legend"><span><i class="sw" style="background:#1d4ed8"></i>events per minute (the busiest '
           'minute of each column)</span><span><i class="sw" style="background:#fde68a"></i>expected → burst '
           'threshold</span><span><i class="sw" style="background:#dc2626"></i>burst</span>'
           '<span><i class="sw" style="background:#ea580c"></i>sustained rise</span></p>']
    out.append("<table><tr><th>rule</th><th class=n>alerts</th><th class=n>bursts</th><th class=n>sustained</th>"
               "<th>parameters</th></tr>")
    for rule in rules:
        mine = [a for a in alerts if a.rule == rule.name]
        sp = rule.cfg.spike
        params = (f"burst {sp.factor:g}× / z {sp.z:g} / min {sp.min_count}; rise {sp.rise_factor:g}× over "
                  f"{sp.rise_minutes} min / z {sp.rise_z:g} / min {sp.rise_min_count}; cooldowns "
                  f"{rule.cfg.cooldown:g} s / {rule.cfg.rise_cooldown:g} s")
        out.append(f'<tr><td><a href="#rule-{_e(rule.name)}">{_e(rule.name)}</a></td><td class=n>{len(mine)}</td>'
                   f"<td class=n>{sum(a.pattern == 'burst' for a in mine)}</td>"
                   f"<td class=n>{sum(a.pattern == 'sustained' for a in mine)}</td><td>{_e(params)}</td></tr>")
    out.append("</table>")
    volume = {svc: sum(n for _, n in c) for svc, c in counts.items()}
    for rule in rules:
        mine = [a for a in alerts if a.rule == rule.name]
        out.append(f'<h2 id="rule-{_e(rule.name)}">Rule {_e(rule.name)}: {len(mine)} alerts</h2>')
        if mine:
            out.append("<table><tr><th>minute</th><th>service</th><th>pattern</th><th class=n>seen</th>"
                       "<th class=n>expected</th><th>alert</th></tr>")
            for a in mine:
                out.append(f"<tr><td>{_e(_when(a.minute))}</td><td>{_e(a.service)}</td><td>{_e(a.pattern)}</td>"
                           f"<td class=n>{a.count:,}</td><td class=n>{a.expected:,.1f}</td><td>{_e(a.title)}</td></tr>")
            out.append("</table>")
        alerted = {a.service for a in mine}
        order = sorted(counts, key=lambda svc: (svc not in alerted, -volume[svc], svc))
        shown = order[:MAX_CHARTS]
        for svc in shown:
            band: list[BandPoint] = []
            replay(rule, svc, counts[svc], band)
            theirs = [a for a in mine if a.service == svc]
            out.append(f"<h3>{_e(svc)} <span class=muted>{volume[svc]:,} events, {len(theirs)} alerts</span></h3>")
            out.append(chart(svc, counts[svc], band, theirs, s, e))
        if len(order) > len(shown):
            out.append(f"<p class=muted>{len(order) - len(shown):,} quieter services without alerts are not drawn "
                       "(<code>--service</code> draws one).</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
