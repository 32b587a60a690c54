"""``errstream report``: build the report from ClickHouse and render it for a terminal, a script or a browser."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from errstream.cli_errors import command_timeout
from errstream_core.settings import Settings
from reports.html import render_html
from reports.report import build_report
from reports.terminal import render
from sinks.clickhouse.client import connect


def run_report(
    settings: Settings, since: str, service: str | None, top: int, as_json: bool, html: Path | None,
    console: Console,
) -> int:
    """The command: terminal report by default, JSON for scripts, and/or an HTML page; exit status.

    ClickHouse failures are explained by the CLI's error layer (errstream/cli_errors.py): a server that is
    not running and a database without the schema get different advice.
    """
    client = connect(settings, connect_timeout=command_timeout(), send_receive_timeout=max(30, command_timeout()))
    try:
        report = build_report(client, settings.clickhouse_database, since, service, top)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    if html is not None:
        html.write_text(render_html(report), encoding="utf-8")
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        render(report, console)
        if html is not None:
            console.print(f"HTML report written to {html}")
    return 0
