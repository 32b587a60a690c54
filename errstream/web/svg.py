"""Charts as inline SVG, drawn on the server: pages need no chart library, no CDN and no JavaScript."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup


def sparkline(values: Sequence[int], width: int = 120, height: int = 24, label: str = "") -> Markup:
    """Columns, one per value; the tallest fills the height."""
    n = max(len(values), 1)
    peak = max(values, default=0) or 1
    step = width / n
    bars = []
    for i, v in enumerate(values):
        if v <= 0:
            continue
        h = max(1.0, (height - 2) * v / peak)
        bars.append(f'<rect x="{i * step:.1f}" y="{height - h:.1f}" width="{max(step - 1, 1):.1f}" '
                    f'height="{h:.1f}"><title>{v:,}</title></rect>')
    return Markup(
        f'<svg class="spark" role="img" aria-label="{escape(label or "events")}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="0" x2="{width}" y1="{height - 0.5}" y2="{height - 0.5}" class="base"/>{"".join(bars)}</svg>'
    )


def columns(points: Sequence[tuple[datetime, int]], width: int = 720, height: int = 140,
            fmt: str = "%H:%M", label: str = "events over time") -> Markup:
    """A labelled column chart of (time, count) points."""
    left, bottom, top = 44, 18, 8
    plot_w, plot_h = width - left - 6, height - bottom - top
    peak = max((v for _, v in points), default=0) or 1
    step = plot_w / max(len(points), 1)
    out = [f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    _y_axis(out, peak, left, width - 6, top, plot_h)
    every = max(1, len(points) // 6)
    for i, (t, v) in enumerate(points):
        x = left + i * step
        if v > 0:
            h = max(1.0, plot_h * v / peak)
            out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(step * 0.85, 1):.1f}" '
                       f'height="{h:.1f}"><title>{t.strftime(fmt)}: {v:,}</title></rect>')
        if i % every == 0:
            out.append(f'<text x="{x:.1f}" y="{height - 4}">{t.strftime(fmt)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def _y_axis(out: list[str], peak: int, left: int, right: int, top: int, plot_h: float) -> None:
    """Grid lines labelled 0, the peak and (from a peak of 4) the middle: never "1/0/0"."""
    for frac in (0, 0.5, 1) if peak >= 4 else (0, 1):
        y = top + plot_h * (1 - frac)
        out.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{round(peak * frac):,}</text>')


def stacked_levels(series: Sequence[tuple[datetime, str, int]], start: datetime, minutes: int = 60,
                   width: int = 460, height: int = 110) -> Markup:
    """Events per minute of one service, stacked by level (the overview's per-service charts).

    One slot per minute from ``start`` for ``minutes``, whatever the data holds: a single busy minute is one
    thin column at its time, not a bar across the chart. Axes: counts on the left, times below.
    """
    left, bottom, top, right = 40, 18, 6, width - 4
    plot_w, plot_h = right - left, height - bottom - top
    totals = [0] * minutes
    cells: list[tuple[int, str, int, datetime]] = []
    for t, level, n in series:
        i = int((t - start).total_seconds() // 60)
        if 0 <= i < minutes and n > 0:
            totals[i] += n
            cells.append((i, level, n, t))
    peak = max(totals) or 1
    step = plot_w / minutes
    out = [f'<svg class="chart" role="img" aria-label="events per minute by level, {start:%H:%M} to '
           f'{start + timedelta(minutes=minutes):%H:%M} UTC" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    _y_axis(out, peak, left, right, top, plot_h)
    stacks = [0.0] * minutes
    order = {lvl: k for k, lvl in enumerate(("critical", "error", "warning", "info", "debug"))}
    for i, level, n, t in sorted(cells, key=lambda c: (c[0], order.get(c[1], 9))):
        h = plot_h * n / peak
        y = top + plot_h - stacks[i] - h
        stacks[i] += h
        out.append(f'<rect x="{left + i * step:.1f}" y="{y:.1f}" width="{max(step - 1, 0.8):.1f}" height="{h:.1f}" '
                   f'class="lv-{escape(level)}"><title>{t:%H:%M} {escape(level)}: {n:,}</title></rect>')
    every = 15 if minutes >= 30 else 5
    for i in range(0, minutes + 1, every):
        x = left + i * step
        anchor = "end" if i == minutes else "middle" if i else "start"
        out.append(f'<text x="{x:.1f}" y="{height - 4}" text-anchor="{anchor}">'
                   f'{start + timedelta(minutes=i):%H:%M}</text>')
    out.append("</svg>")
    return Markup("".join(out))
