"""``errstream issue …``: change an issue's status and read it back.

Changes are published to the compacted status topic (the workers and the
status sink consume it); reads come from ClickHouse ``issue_status`` (latest
per fingerprint) and ``issue_status_history``. An issue with no recorded
change is ``new``.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from errstream.issue_actions import ActionRequest
from errstream_core.settings import get_settings
from reports.issues import latest_status, list_statuses, status_history
from schemas.issue_status import IssueStatus, IssueStatusChange

issue_app = typer.Typer(help="Issue workflow: resolve, ignore, acknowledge, investigate, reopen; status; list.",
                        no_args_is_help=True)
console = Console()

Fingerprint = Annotated[str, typer.Argument(help="the issue's fingerprint (32 hex characters)")]
Note = Annotated[str, typer.Option("--note", "-m", help="resolution or triage note")]
By = Annotated[str | None, typer.Option("--by", help="who made the change (default: $ERRSTREAM_USER or login)")]

STATUS_STYLE = {"new": "cyan", "acknowledged": "yellow", "investigating": "magenta", "resolved": "green",
                "ignored": "dim"}


def default_actor() -> str:
    try:
        return os.environ.get("ERRSTREAM_USER") or getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def make_change(fingerprint: str, status: IssueStatus, note: str = "", by: str | None = None) -> IssueStatusChange:
    return IssueStatusChange(fingerprint=fingerprint.strip().lower(), status=status, note=note,
                             changed_by=by if by is not None else default_actor())


def _status_command(status: IssueStatus, verb: str) -> Callable[..., None]:
    def command(fingerprint: Fingerprint, note: Note = "", by: By = None) -> None:
        from producers.issue_status import publish_status_change

        try:
            change = make_change(fingerprint, status, note, by)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            console.print(f"[red]error:[/red] {problems}")
            raise typer.Exit(2) from None
        settings = get_settings()
        asyncio.run(publish_status_change(settings, change))
        console.print(f"{change.fingerprint} → [{STATUS_STYLE[status]}]{status}[/] by {change.changed_by or '?'}"
                      + (f": {change.note}" if change.note else ""))

    command.__doc__ = f"{verb} (published to the compacted issue-status topic)."
    return command


for _name, _status, _verb in [
    ("resolve", "resolved", "Resolve an issue: its next event raises a regression"),
    ("ignore", "ignored", "Ignore an issue: it fires no alerts"),
    ("ack", "acknowledged", "Acknowledge an issue"),
    ("investigate", "investigating", "Mark an issue as under investigation"),
    ("reopen", "new", "Reopen an issue (status back to new)"),
]:
    issue_app.command(_name)(_status_command(_status, _verb))  # type: ignore[arg-type]


def _publish_action(request: ActionRequest, by: str | None) -> None:
    """Carry the issue's current state forward (a compacted topic keeps only the latest record)."""
    from errstream.issue_actions import plan_changes
    from producers.issue_status import StatusPublisher
    from reports.issues import workflow_state
    from sinks.clickhouse_client import connect

    settings = get_settings()
    states = workflow_state(connect(settings), settings, request.fingerprints)
    changes = plan_changes(request, states, by if by is not None else default_actor())

    async def go() -> None:
        publisher = StatusPublisher(settings)
        try:
            await publisher.publish(changes)
        finally:
            await publisher.stop()

    asyncio.run(go())
    for c in changes:
        console.print(f"{c.fingerprint} → {c.assignee or 'unassigned'} ([{STATUS_STYLE[c.status]}]{c.status}[/]) "
                      f"by {c.changed_by or '?'}")


def _action(action: str, fingerprint: str, by: str | None, **fields: str) -> ActionRequest:
    try:
        return ActionRequest(action=action, fingerprints=[fingerprint], **fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        console.print(f"[red]error:[/red] {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from None


@issue_app.command("assign")
def assign(fingerprint: Fingerprint, owner: Annotated[str, typer.Argument(help="a person or a team")],
           note: Note = "", by: By = None) -> None:
    """Assign an issue to a person or team (its status is kept)."""
    _publish_action(_action("assign", fingerprint, by, assignee=owner, note=note), by)


@issue_app.command("unassign")
def unassign(fingerprint: Fingerprint, by: By = None) -> None:
    """Remove an issue's assignee."""
    _publish_action(_action("unassign", fingerprint, by), by)


def _when(ts: datetime) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S} UTC"


@issue_app.command("status")
def status(fingerprint: Fingerprint) -> None:
    """Show an issue's current status and its history."""
    from sinks.clickhouse_client import connect

    settings = get_settings()
    fp = fingerprint.strip().lower()
    client = connect(settings)
    latest = latest_status(client, settings, fp)
    if latest is None:
        console.print(f"{fp}: [cyan]new[/] (no status change recorded)")
        return
    console.print(f"{fp}: [{STATUS_STYLE[latest['status']]}]{latest['status']}[/] since {_when(latest['changed_at'])}"
                  f" by {latest['changed_by'] or '?'}" + (f" — {latest['note']}" if latest["note"] else ""))
    table = Table("changed at", "status", "by", "note", title="history")
    for changed_at, st, by, note in status_history(client, settings, fp):
        table.add_row(_when(changed_at), f"[{STATUS_STYLE[st]}]{st}[/]", by, note)
    console.print(table)


@issue_app.command("list")
def list_issues(
    status: Annotated[list[str] | None, typer.Option("--status", "-s", help="only these statuses (repeat)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, most recently changed first")] = 50,
) -> None:
    """Issues whose status was changed, most recent first."""
    from sinks.clickhouse_client import connect

    settings = get_settings()
    table = Table("fingerprint", "status", "changed at", "by", "note", "title")
    for fp, st, changed_at, by, note, title in list_statuses(connect(settings), settings, status or [], limit):
        table.add_row(fp, f"[{STATUS_STYLE[st]}]{st}[/]", _when(changed_at), by, note, title)
    console.print(table)
