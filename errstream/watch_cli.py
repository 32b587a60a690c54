"""``errstream watch``: refresh the live view of errors every ``--interval`` seconds, in place or as plain lines."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live

from errstream.cli_errors import command_timeout
from errstream_core.settings import Settings
from reports.watch import WatchQueries, render_plain, render_rich
from sinks.clickhouse.client import connect


def run_watch(settings: Settings, *, interval: float, minutes: int, top: int, service: str | None,
              level: str | None, plain: bool, count: int | None, console: Console) -> int:
    """Refresh until interrupted (or ``count`` refreshes); exit status. Two ClickHouse queries per refresh."""
    client = connect(settings, connect_timeout=command_timeout(), send_receive_timeout=max(30, command_timeout()))
    try:
        queries = WatchQueries(client, settings.clickhouse_database, minutes=minutes, top=top, service=service,
                               level=level)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    filters = "".join(f" · {name} {value}" for name, value in (("service", service), ("level ≥", level)) if value)
    done = 0
    plain = plain or not console.is_terminal or console.is_dumb_terminal
    try:
        if plain:
            while count is None or done < count:
                if done:
                    time.sleep(interval)
                print(render_plain(queries.snapshot(), filters), flush=True)
                done += 1
            return 0
        with Live(render_rich(queries.snapshot(), filters), console=console, auto_refresh=False,
                  screen=False) as live:
            done = 1
            while count is None or done < count:
                time.sleep(interval)
                live.update(render_rich(queries.snapshot(), filters), refresh=True)
                done += 1
    except KeyboardInterrupt:
        pass
    return 0
