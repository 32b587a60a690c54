"""The report as one self-contained HTML page: inline SVG charts, no JavaScript, no CDN.

A page that opens from a mail attachment or an air-gapped laptop must not fetch
anything, so the charts are drawn here as SVG and the styles are inline. Every
string from the data is escaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from reports.recovery import fmt_seconds
from reports.report import Report, bucket_label

_COLORS = {"critical": "#c62828", "error": "#ef6c00", "other": "#fbc02d"}
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}.muted{color:#666}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:22px}.up{color:#c62828}.down{color:#2e7d32}.new{color:#8e24aa}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#fafafa}td.n{text-align:right;font-variant-numeric:tabular-nums}.tag{font-size:11px;padding:1px 5px;border-radius:4px;background:#eee}
.critical{color:#c62828;font-weight:600}.error{color:#ef6c00}.warning{color:#b28704}svg text{font:11px system-ui,sans-serif;fill:#555}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
"""


def _change(pct: float | None) -> str:
    if pct is None:
        return '<span class="new">new</span>'
    cls = "up" if pct > 0 else "down" if pct < 0 else ""
    return f'<span class="{cls}">{pct:+.1f}%</span>'


def _fmt_time(t: datetime | None, bucket: int = 60) -> str:
    if t is None:
        return "-"
    return t.strftime("%m-%d %H:%M" if bucket < 86400 else "%Y-%m-%d")


def timeline_svg(report: Report, width: int = 1060, height: int = 220) -> str:
    """Stacked columns per bucket: critical, error, and warning-or-below."""
    pts = report.timeline
    left, bottom, top = 48, 22, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((p.events for p in pts), default=0) or 1
    step = plot_w / max(len(pts), 1)
    bar_w = max(1.0, step * 0.85)
    out = [(f'<svg role="img" aria-label="events over time" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">')]
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{round(peak * frac):,}</text>')
    for i, p in enumerate(pts):
        x = left + i * step
        y = top + plot_h
        for value, key in ((p.critical, "critical"), (p.errors, "error"), (p.events - p.critical - p.errors, "other")):
            if value <= 0:
                continue
            h = plot_h * value / peak
            y -= h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{_COLORS[key]}">'
                       f'<title>{escape(_fmt_time(p.start, report.bucket_seconds))}: {value:,} {key}</title></rect>')
    ticks = sorted({0, len(pts) // 2, len(pts) - 1}) if pts else []
    for i in ticks:
        x = left + i * step + bar_w / 2
        anchor = "start" if i == 0 else "end" if i == len(pts) - 1 else "middle"
        out.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="{anchor}">'
                   f'{escape(_fmt_time(pts[i].start, report.bucket_seconds))}</text>')
    out.append("</svg>")
    return "".join(out)


def bars_svg(items: list[tuple[str, int, str]], width: int = 1060, bar_h: int = 22) -> str:
    """Horizontal bars: (label, value, color)."""
    if not items:
        return '<p class="muted">Nothing in this window.</p>'
    label_w, value_w = 360, 70
    peak = max(v for _, v, _ in items) or 1
    height = bar_h * len(items) + 4
    out = [(f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'xmlns="http://www.w3.org/2000/svg">')]
    for i, (label, value, color) in enumerate(items):
        y = i * bar_h + 2
        w = (width - label_w - value_w) * value / peak
        short = label if len(label) <= 55 else label[:54] + "…"
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end"><title>{escape(label)}</title>'
                   f'{escape(short)}</text><rect x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" '
                   f'height="{bar_h - 6}" rx="2" fill="{color}"/><text x="{label_w + w + 6:.1f}" '
                   f'y="{y + 15}">{value:,}</text>')
    out.append("</svg>")
    return "".join(out)


def _num(text: str) -> str:
    return f'<td class="n">{text}</td>'


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    """Cells are HTML already escaped by the caller; a cell that is a whole <td> keeps its own attributes."""
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _opt(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:,.1f}{unit}"


def recovery_html(report: Report) -> str:
    """Recovery rate, methods and automatic versus manual recovery times."""
    r = report.recovery
    head = (f'<p>{r.successful:,} of {r.attempted:,} recovery attempts succeeded ({_opt(r.success_rate_pct, " %")})</p>'
            if r.attempted else "")
    methods = _table(["service", "method", "attempted", "recovered", "success rate", "avg", "median", "p95"], [
        [escape(m.service), escape(m.method), _num(f"{m.attempted:,}"), _num(f"{m.successful:,}"),
         _num(_opt(m.success_rate_pct, " %")), _num(_opt(m.avg_ms, " ms")), _num(_opt(m.median_ms, " ms")),
         _num(_opt(m.p95_ms, " ms"))]
        for m in r.by_method], "No recovery reported in this window.")
    times = _table(["recovery", "count", "avg", "median", "p95"], [
        [escape(t.kind), _num(f"{t.recoveries:,}"), _num(fmt_seconds(t.avg_seconds)), _num(fmt_seconds(t.median_seconds)),
         _num(fmt_seconds(t.p95_seconds))]
        for t in r.times], "")
    return head + methods + times


def render_html(report: Report) -> str:
    o = report.overview
    scope = f"service {escape(report.service)}" if report.service else "all services"
    cards = [
        ("events", f"{o.events:,}", f"{_change(o.change_pct)} vs previous {escape(report.since)}"),
        ("issues", f"{o.issues:,}", f"{o.new_issues:,} new"),
        ("users affected", f"{o.users:,}", "approximate distinct"),
        ("critical events", f"{o.critical:,}", ""),
        ("services", f"{o.services:,}", ""),
        ("raw events stored", f"{o.stored:,}", "after sampling"),
    ]
    issues = _table(["events", "prev", "users", "level", "status", "issue", "services", "first seen"], [
        [_num(f"{i.events:,}"), _num(f"{i.previous_events:,}"), _num(f"{i.users:,}"),
         f'<td class="{escape(i.worst_level)}">{escape(i.worst_level)}</td>', escape(i.status),
         (f'{escape(i.title)}{" <span class=tag>NEW</span>" if i.is_new else ""}<br>'
         f'<span class="muted">{escape(i.culprit)} · {escape(i.fingerprint)}</span>'),
         escape(", ".join(i.services)), _fmt_time(i.first_seen)]
        for i in report.top_issues], "No errors in this window.")
    services = _table(["service", "events", "change", "issues", "users", "critical"], [
        [escape(s.service), _num(f"{s.events:,}"), _num(_change(s.change_pct)), _num(f"{s.issues:,}"),
         _num(f"{s.users:,}"), _num(f"{s.critical:,}")]
        for s in report.by_service], "No errors in this window.")
    spikes = _table(["when", "kind", "service", "issue", "detail"], [
        [_fmt_time(a.created_at), escape(a.kind), escape(a.service), escape(a.title), escape(a.message)]
        for a in report.spikes], "No spikes in this window.")
    chains = _table(["started", "events", "span", "root", "services"], [
        [_fmt_time(c.started_at), _num(str(c.event_count)), _num(f"{c.duration_ms / 1000:.1f}s"),
         f"{escape(c.root_service)}: {escape(c.root_title)}", escape(" → ".join(c.services))]
        for c in report.chains], "No error chains in this window.")
    recovery = recovery_html(report)
    bucket = bucket_label(report.bucket_seconds)
    top_bars = bars_svg([(i.title or i.fingerprint, i.events, _COLORS.get(i.worst_level, _COLORS["other"]))
                         for i in report.top_issues])
    svc_bars = bars_svg([(s.service, s.events, "#1565c0") for s in report.by_service])
    legend = "".join(f'<span style="background:{c}"></span>{k}' for k, c in _COLORS.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>errstream report · last {escape(report.since)} · {scope}</title><style>{_CSS}</style></head><body>
<h1>errstream report · last {escape(report.since)} · {scope}</h1>
<div class="muted">{report.window_start:%Y-%m-%d %H:%M} → {report.window_end:%Y-%m-%d %H:%M} UTC ·
generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC</div>
<div class="cards">{"".join(f'<div class="card"><span class="muted">{k}</span><b>{v}</b>{s}</div>' for k, v, s in cards)}</div>
<h2>Events per {bucket}</h2><div class="legend muted">{legend}</div>{timeline_svg(report)}
<h2>Top issues</h2>{top_bars}{issues}
<h2>By service</h2>{svc_bars}{services}
<h2>Spikes</h2>{spikes}
<h2>Error chains</h2>{chains}
<h2>Recovery</h2>{recovery}
</body></html>
"""
