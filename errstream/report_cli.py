"""``errstream report``: build the report from ClickHouse and render it for a terminal, a script or a browser."""

from __future__ import annotations

from pathlib import Path

from clickhouse_connect.driver.exceptions import ClickHouseError
from rich.console import Console

from errstream_core.settings import Settings
from reports.html import render_html
from reports.report import build_report
from reports.terminal import render
from sinks.clickhouse_client import connect


def run_report(
    settings: Settings, since: str, service: str | None, top: int, as_json: bool, html: Path | None,
    console: Console,
) -> int:
    """The command: terminal report by default, JSON for scripts, and/or an HTML page; exit status."""
    try:
        report = build_report(connect(settings), settings.clickhouse_database, since, service, top)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except ClickHouseError as exc:
        console.print(f"[red]ClickHouse error[/red] at {settings.clickhouse_url} (has `errstream migrate` run?): {exc}")
        return 1
    if html is not None:
        html.write_text(render_html(report), encoding="utf-8")
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        render(report, console)
        if html is not None:
            console.print(f"HTML report written to {html}")
    return 0
