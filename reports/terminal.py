"""The report in a terminal: rich tables and a block-character timeline."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from reports.recovery import fmt_seconds
from reports.report import Report, TimelinePoint, bucket_label

_BLOCKS = " ▁▂▃▄▅▆▇█"
_LEVEL_STYLE = {"critical": "bold red", "error": "red", "warning": "yellow", "info": "cyan", "debug": "dim"}


def fmt_change(pct: float | None) -> Text:
    if pct is None:
        return Text("new", style="magenta")
    style = "red" if pct > 0 else "green" if pct < 0 else ""
    return Text(f"{pct:+.1f}%", style=style)


def fmt_int(n: int) -> str:
    return f"{n:,}"


def _when(t: datetime | None, bucket: int) -> str:
    if t is None:
        return "-"
    return t.strftime("%m-%d %H:%M" if bucket < 86400 else "%Y-%m-%d")


def resample(points: list[TimelinePoint], width: int) -> list[tuple[datetime, int, int]]:
    """Sum adjacent buckets until the series fits ``width`` columns: (start, events, critical)."""
    per = max(1, -(-len(points) // max(width, 1)))
    out = []
    for i in range(0, len(points), per):
        chunk = points[i:i + per]
        out.append((chunk[0].start, sum(p.events for p in chunk), sum(p.critical for p in chunk)))
    return out


def timeline_chart(report: Report, width: int, height: int = 8) -> Text:
    """A column chart, one column per bucket; red columns contain critical events."""
    label_w = 8
    cols = resample(report.timeline, max(10, width - label_w - 2))
    peak = max((c[1] for c in cols), default=0)
    text = Text()
    for row in range(height, 0, -1):
        label = fmt_int(peak) if row == height else "0" if row == 1 else ""
        text.append(f"{label:>{label_w}} │", style="dim")
        for _, events, critical in cols:
            eighths = round(events / peak * height * 8) if peak else 0
            fill = max(0, min(8, eighths - (row - 1) * 8))
            if events and row == 1 and fill == 0:
                fill = 1  # a non-zero bucket always shows
            text.append(_BLOCKS[fill], style="red" if critical else "yellow")
        text.append("\n")
    text.append(" " * label_w + " └" + "─" * len(cols) + "\n", style="dim")
    if cols:
        left, right = _when(cols[0][0], report.bucket_seconds), _when(cols[-1][0], report.bucket_seconds)
        gap = max(1, len(cols) - len(left) - len(right) + 2)
        text.append(" " * (label_w + 2) + left + " " * gap + right, style="dim")
    return text


def render(report: Report, console: Console) -> None:
    o = report.overview
    scope = f"service {report.service}" if report.service else "all services"
    head = Text.assemble(
        (f"{fmt_int(o.events)} events", "bold"), " (",
        fmt_change(o.change_pct) if o.events or o.previous_events else Text("±0", style="dim"),
        f" vs previous {report.since}) · ",
        (f"{fmt_int(o.issues)} issues", "bold"), f" ({o.new_issues} new) · ",
        (f"{fmt_int(o.users)} users affected", "bold"), f" · {o.services} services · ",
        (f"{fmt_int(o.critical)} critical", "bold red" if o.critical else ""),
        f" · {fmt_int(o.stored)} raw events stored",
    )
    window = f"{report.window_start:%Y-%m-%d %H:%M} → {report.window_end:%Y-%m-%d %H:%M} UTC"
    bucket = bucket_label(report.bucket_seconds)
    console.print(Panel(head, title=f"errstream report · last {report.since} · {scope}", subtitle=window))
    console.print(Panel(timeline_chart(report, console.width - 4),
                        title=f"events per {bucket} (red: with critical)", expand=False))

    wide = console.width >= 110
    top = Table(title="Top issues", title_justify="left", expand=True)
    cols: list[tuple[str, dict[str, object]]] = [("events", {"justify": "right"})]
    cols += [("prev", {"justify": "right"})] if wide else []
    cols += [("users", {"justify": "right"}), ("level", {}), ("status", {}), ("issue", {"ratio": 1, "min_width": 24})]
    cols += [("services", {}), ("first seen", {})] if wide else []
    for col, kw in cols:
        top.add_column(col, **kw)  # type: ignore[arg-type]
    for i in report.top_issues:
        issue = Text(i.title or i.fingerprint)
        issue.append(f"\n{i.culprit}  {i.fingerprint[:12]}", style="dim")
        if i.is_new:
            issue.append("  NEW", style="bold magenta")
        cells: list[str | Text] = [fmt_int(i.events), *([fmt_int(i.previous_events)] if wide else [])]
        cells += [fmt_int(i.users), Text(i.worst_level, style=_LEVEL_STYLE.get(i.worst_level, "")), i.status, issue]
        cells += [", ".join(i.services), _when(i.first_seen, 60)] if wide else []
        top.add_row(*cells)
    console.print(top if report.top_issues else Text("No errors in this window.", style="dim"))

    svc = Table(title="By service", title_justify="left")
    for col in ("service", "events", "change", "issues", "users", "critical"):
        svc.add_column(col, justify="left" if col == "service" else "right")
    for s in report.by_service:
        svc.add_row(s.service, fmt_int(s.events), fmt_change(s.change_pct), fmt_int(s.issues), fmt_int(s.users),
                    Text(fmt_int(s.critical), style="red" if s.critical else ""))
    if report.by_service:
        console.print(svc)

    parts: list[Table | Text] = []
    if report.spikes:
        sp = Table(title="Spikes", title_justify="left")
        for col in ("when", "kind", "service", "issue", "detail"):
            sp.add_column(col)
        for a in report.spikes:
            sp.add_row(_when(a.created_at, 60), a.kind, a.service, a.title, a.message)
        parts.append(sp)
    else:
        parts.append(Text("No spikes in this window.", style="dim"))
    if report.chains:
        ch = Table(title="Error chains", title_justify="left")
        for col in ("started", "events", "span", "root", "services"):
            ch.add_column(col)
        for c in report.chains:
            ch.add_row(_when(c.started_at, 60), str(c.event_count), f"{c.duration_ms / 1000:.1f}s",
                       f"{c.root_service}: {c.root_title}", " → ".join(c.services))
        parts.append(ch)
    else:
        parts.append(Text("No error chains in this window.", style="dim"))
    if report.release_health:
        rh = Table(title="Release health (sessions or requests)", title_justify="left")
        for col in ("service", "environment", "release", "sessions", "errored", "error rate", "crash-free",
                    "crash-free users"):
            rh.add_column(col, justify="right" if col not in ("service", "environment", "release") else "left")
        for h in report.release_health:
            rh.add_row(h.service, h.environment, h.release or "—", f"{h.sessions:,}", f"{h.errored_sessions:,}",
                       _pct(h.error_rate_pct), _pct(h.crash_free_sessions_pct), _pct(h.crash_free_users_pct))
        parts.append(rh)
    console.print(Group(*parts))
    render_recovery(report, console)


def _opt(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:,.1f}{unit}"


def render_recovery(report: Report, console: Console) -> None:
    """Recovery rate per service and method, and automatic versus manual recovery times."""
    r = report.recovery
    if not r.attempted and not any(t.recoveries for t in r.times):
        console.print(Text("No recovery reported in this window.", style="dim"))
        return
    if r.by_method:
        table = Table(title=f"Recovery: {r.successful:,} of {r.attempted:,} attempts succeeded "
                            f"({_opt(r.success_rate_pct, ' %')})", title_justify="left")
        for col in ("service", "method", "attempted", "recovered", "success rate", "avg", "median", "p95"):
            table.add_column(col, justify="left" if col in ("service", "method") else "right")
        for m in r.by_method:
            low = m.success_rate_pct is not None and m.success_rate_pct < 80
            table.add_row(m.service, m.method, fmt_int(m.attempted), fmt_int(m.successful),
                          Text(_opt(m.success_rate_pct, " %"), style="red" if low else "green"),
                          _opt(m.avg_ms, " ms"), _opt(m.median_ms, " ms"), _opt(m.p95_ms, " ms"))
        console.print(table)
    times = Table(title="Recovery times (automatic: first failure to recovery; manual: first seen to resolved)",
                  title_justify="left")
    for col in ("recovery", "count", "avg", "median", "p95"):
        times.add_column(col, justify="left" if col == "recovery" else "right")
    for t in r.times:
        times.add_row(t.kind, fmt_int(t.recoveries), fmt_seconds(t.avg_seconds), fmt_seconds(t.median_seconds),
                      fmt_seconds(t.p95_seconds))
    console.print(times)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} %"
