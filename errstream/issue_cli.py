"""``errstream issue …``: change an issue's status, merge and unmerge issues, and read them back.

Changes are published to the compacted status topic (the workers and the
status sink consume it); reads come from ClickHouse ``issue_status`` (latest
per fingerprint) and ``issue_status_history``. An issue with no recorded
change is ``new``. Merges go to the compacted merge topic the same way
(``issue_merges``, ``issue_merge_history``); a status change of a merged
group applies to all of its fingerprints.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from errstream.cli_errors import CliError, Timeout, command_timeout, redact_url
from errstream.issue_actions import ActionRequest
from errstream_core.settings import Settings, get_settings
from reports.issues import latest_status, list_statuses, match_fingerprints, status_history
from schemas.issue_status import IssueStatus, IssueStatusChange
from stream_processors.detection_rules.escalating import WEEKDAYS

issue_app = typer.Typer(help="Issue workflow: resolve, ignore, archive (until escalating), acknowledge, investigate, "
                        "reopen; merge, unmerge; status; list.",
                        no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

Fingerprint = Annotated[str, typer.Argument(
    help="the issue's fingerprint: all 32 hex characters, or a unique prefix of 8 or more (as reports show)")]
_HEX = re.compile(r"^[0-9a-f]{8,32}$")
Note = Annotated[str, typer.Option("--note", "-m", help="resolution or triage note")]
By = Annotated[str | None, typer.Option("--by", help="who made the change (default: $ERRSTREAM_USER or login)")]

STATUS_STYLE = {"new": "cyan", "acknowledged": "yellow", "investigating": "magenta", "resolved": "green",
                "ignored": "dim", "regressed": "bold red", "escalating": "bold red"}


def default_actor() -> str:
    try:
        return os.environ.get("ERRSTREAM_USER") or getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def make_change(fingerprint: str, status: IssueStatus, note: str = "", by: str | None = None) -> IssueStatusChange:
    return IssueStatusChange(fingerprint=fingerprint.strip().lower(), status=status, note=note,
                             changed_by=by if by is not None else default_actor())


def _client(settings: Settings) -> Any:
    from sinks.clickhouse.client import connect

    return connect(settings, connect_timeout=command_timeout())


def normalise_fingerprint(text: str) -> str:
    fp = text.strip().lower()
    if not _HEX.match(fp):
        raise CliError(f"{text!r} is not a fingerprint: give its 32 hex characters or a unique prefix of 8 or more",
                       code=2)
    return fp


def resolve_fingerprint(text: str, settings: Settings, client: Any | None = None, *, lookup_full: bool = False) -> str:
    """The full fingerprint ``text`` names: itself when it has all 32 characters (unless ``lookup_full``), else
    the one known issue it is a prefix of. Unknown or ambiguous prefixes are refused with a reason."""
    fp = normalise_fingerprint(text)
    if len(fp) == 32 and not lookup_full:
        return fp
    matches = match_fingerprints(client if client is not None else _client(settings), settings, fp)
    if not matches:
        what = "no such issue" if len(fp) == 32 else "no issue has a fingerprint starting with"
        raise CliError(f"{what} {fp} in ClickHouse at {redact_url(settings.clickhouse_url)} "
                       f"(database {settings.clickhouse_database!r})")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", …" if len(matches) > 5 else "")
        raise CliError(f"{fp} is ambiguous: it starts {len(matches) if len(matches) < 10 else '10 or more'} "
                       f"fingerprints ({shown}); give more characters", code=2)
    return matches[0]


def _group_mapping(settings: Settings) -> dict[str, str]:
    """The merges in force, for a status change to reach a merged group's every fingerprint. An unreachable
    ClickHouse does not stop the change (it needs only Kafka): it then applies to the fingerprint given."""
    from reports.merges import merge_mapping

    try:
        return merge_mapping(_client(settings), settings)
    except Exception as exc:
        err_console.print(f"[yellow]warning:[/yellow] merges not looked up ({type(exc).__name__}): the change "
                          "applies to the fingerprint given only")
        return {}


def _publish_status(settings: Settings, changes: list[IssueStatusChange]) -> None:
    from producers.issue_status import StatusPublisher

    async def go() -> None:
        publisher = StatusPublisher(settings, command_timeout())
        try:
            await publisher.publish(changes)
        finally:
            await publisher.stop()

    asyncio.run(go())


def _status_command(status: IssueStatus, verb: str) -> Callable[..., None]:
    def command(fingerprint: Fingerprint, note: Note = "", by: By = None, timeout: Timeout = None) -> None:
        from errstream.issue_merges import for_group

        settings = get_settings()
        try:
            change = make_change(resolve_fingerprint(fingerprint, settings), status, note, by)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            console.print(f"[red]error:[/red] {problems}")
            raise typer.Exit(2) from None
        changes = for_group([change], _group_mapping(settings))
        _publish_status(settings, changes)
        console.print(f"{change.fingerprint} → [{STATUS_STYLE[status]}]{status}[/] by {change.changed_by or '?'}"
                      + (f": {change.note}" if change.note else ""))
        for other in changes:
            if other.fingerprint != change.fingerprint:
                console.print(f"  and {other.fingerprint} (same merged issue)")

    command.__doc__ = f"{verb} (published to the compacted issue-status topic)."
    return command


for _name, _status, _verb in [
    ("resolve", "resolved", "Resolve an issue: its next event raises a regression"),
    ("ack", "acknowledged", "Acknowledge an issue"),
    ("investigate", "investigating", "Mark an issue as under investigation"),
    ("reopen", "new", "Reopen an issue (status back to new)"),
]:
    issue_app.command(_name)(_status_command(_status, _verb))  # type: ignore[arg-type]


def _publish_action(request: ActionRequest, by: str | None) -> None:
    """Carry the issue's current state forward (a compacted topic keeps only the latest record)."""
    from errstream.issue_actions import escalating_rule, plan_changes
    from errstream.issue_merges import for_group
    from reports.issues import escalating_history, workflow_state
    from reports.merges import merge_mapping
    from sinks.clickhouse.client import connect

    settings = get_settings()
    client = connect(settings)
    states = workflow_state(client, settings, request.fingerprints)
    history = escalating_history(client, settings, request.fingerprints) if request.escalating else None
    changes = for_group(plan_changes(request, states, by if by is not None else default_actor(), history=history,
                                     rule=escalating_rule(settings)),
                        merge_mapping(client, settings))
    _publish_status(settings, changes)
    for c in changes:
        console.print(f"{c.fingerprint} → {c.assignee or 'unassigned'} ([{STATUS_STYLE[c.status]}]{c.status}[/]) "
                      f"by {c.changed_by or '?'}" + (f": {c.note}" if c.note else ""))
        for line in ignore_conditions(c.model_dump()):
            console.print(f"  {line}")


def ignore_conditions(state: dict[str, Any]) -> list[str]:
    """What lifts an ignore, as people read it (one line each)."""
    out = []
    if state.get("ignore_until"):
        out.append(f"until {_when(state['ignore_until'])}")
    if state.get("ignore_until_events"):
        out.append(f"until {state['ignore_until_events']:,} more events")
    if state.get("ignore_until_escalating"):
        forecast = list(state.get("escalating_forecast") or [])
        if len(set(forecast)) == 1:
            per_day = f"{forecast[0]:,} an hour, every day"
        else:
            per_day = " · ".join(f"{d[:3]} {n:,}" for d, n in zip(WEEKDAYS, forecast, strict=False)) + " an hour, UTC"
        out.append("until escalating: more events in an hour than its forecast" + (f" ({per_day})" if forecast else ""))
    return out


@issue_app.command("ignore")
def ignore(
    fingerprint: Fingerprint, note: Note = "", by: By = None, timeout: Timeout = None,
    until_escalating: Annotated[bool, typer.Option(
        "--until-escalating", help="back in the stream once its events in an hour beat its forecast")] = False,
    minutes: Annotated[int | None, typer.Option("--minutes", min=1, max=525_600, help="back after this long")] = None,
    events: Annotated[int | None, typer.Option("--events", min=1, help="back after this many more events")] = None,
) -> None:
    """Ignore an issue: it fires no alerts (for good, or until a time, N more events or it escalates)."""
    if not (until_escalating or minutes or events):
        _status_command("ignored", "")(fingerprint, note, by, timeout)
        return
    _publish_action(_action("ignore", fingerprint, by, note=note, until_escalating=until_escalating,
                            ignore_minutes=minutes, ignore_until_events=events), by)


@issue_app.command("archive")
def archive(
    fingerprint: Fingerprint, note: Note = "", by: By = None, timeout: Timeout = None,
    forever: Annotated[bool, typer.Option("--forever", help="never back on its own (= ignore)")] = False,
    until_escalating: Annotated[bool, typer.Option(
        "--until-escalating", help="the default: back in the stream once its events in an hour beat its forecast, "
        "computed now from its last 7 days")] = True,
) -> None:
    """Archive an issue until it escalates: silent until its volume beats the forecast of its own last 7 days;
    then an `escalating` alert, and it is back in the stream with status escalating."""
    if forever or not until_escalating:
        _status_command("ignored", "")(fingerprint, note, by, timeout)
        return
    _publish_action(_action("archive", fingerprint, by, note=note), by)


def _action(action: str, fingerprint: str, by: str | None, **fields: Any) -> ActionRequest:
    try:
        fp = resolve_fingerprint(fingerprint, get_settings())  # a unique prefix of 8+ characters works too
        return ActionRequest(action=action, fingerprints=[fp], **fields)  # type: ignore[arg-type]
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


def _merge_action(action: str, fingerprints: list[str], by: str | None, note: str, into: str | None) -> None:
    """Plan against the merges in force (ClickHouse), publish to the merge topic, say what changed."""
    from errstream.issue_merges import MergeError, plan_merge, plan_unmerge
    from producers.issue_status import publish_merges
    from reports.merges import known_fingerprints, merge_mapping

    settings = get_settings()
    for text in [*fingerprints, *([into] if into else [])]:
        normalise_fingerprint(text)  # a typo is refused before any server is asked
    client = _client(settings)
    fps = [resolve_fingerprint(f, settings, client) for f in fingerprints]
    target = resolve_fingerprint(into, settings, client) if into else None
    try:
        request = ActionRequest(action=action, fingerprints=fps, into=target, note=note)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise CliError(str(exc.errors()[0]["msg"]), code=2) from None
    actor = by if by is not None else default_actor()
    mapping = merge_mapping(client, settings)
    try:
        if action == "merge":
            wanted = request.fingerprints + ([request.into] if request.into else [])
            changes = plan_merge(mapping, request.fingerprints, known_fingerprints(client, settings, wanted), actor,
                                 into=request.into, note=request.note)
        else:
            changes = plan_unmerge(mapping, request.fingerprints, actor, note=request.note)
    except MergeError as exc:
        raise CliError(str(exc), code=2) from None
    asyncio.run(publish_merges(settings, changes, timeout=command_timeout()))
    for c in changes:
        console.print(f"{c.fingerprint} → " + (f"merged into {c.primary}" if c.primary else "its own issue again")
                      + f" by {c.changed_by or '?'}" + (f": {c.note}" if c.note else ""))


Fingerprints = Annotated[list[str], typer.Argument(
    help="fingerprints (32 hex characters, or unique prefixes of 8 or more)")]


@issue_app.command("merge")
def merge(fingerprints: Fingerprints,
          into: Annotated[str | None, typer.Option("--into", help="the primary (default: the first fingerprint)")] = None,
          note: Note = "", by: By = None, timeout: Timeout = None) -> None:
    """Merge issues into one: events keep their fingerprints; counts, views, the report and alerts follow the
    primary (merging a group's primary moves its whole group)."""
    _merge_action("merge", fingerprints, by, note, into)


@issue_app.command("unmerge")
def unmerge(fingerprints: Fingerprints, note: Note = "", by: By = None, timeout: Timeout = None) -> None:
    """Make merged fingerprints their own issues again (a primary: its whole group)."""
    _merge_action("unmerge", fingerprints, by, note, None)


def _when(ts: datetime) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S} UTC"


@issue_app.command("status")
def status(fingerprint: Fingerprint, timeout: Timeout = None) -> None:
    """Show an issue's current status and its history (an issue ClickHouse has never seen is refused)."""
    settings = get_settings()
    normalise_fingerprint(fingerprint)  # a typo is refused before any server is asked
    client = _client(settings)
    fp = resolve_fingerprint(fingerprint, settings, client, lookup_full=True)
    from reports.issues import merge_history
    from reports.merges import merge_mapping

    primary = merge_mapping(client, settings).get(fp)
    if primary:
        console.print(f"{fp} is merged into {primary}: its status is that issue's")
        fp = primary
    merges = merge_history(client, settings, fp)
    latest = latest_status(client, settings, fp)
    if latest is None:
        console.print(f"{fp}: [cyan]new[/] (no status change recorded)")
        _print_merges(merges)
        return
    note = f" — {latest['note']}" if latest["note"] else ""
    if latest["status"] == "regressed":
        console.print(f"{fp}: [{STATUS_STYLE['regressed']}]regressed[/]: resolved {_when(latest['changed_at'])} by "
                      f"{latest['changed_by'] or '?'}{note}, seen again {_when(latest['last_seen'])}")
    else:
        console.print(f"{fp}: [{STATUS_STYLE[latest['status']]}]{latest['status']}[/] since "
                      f"{_when(latest['changed_at'])} by {latest['changed_by'] or '?'}{note}")
        if latest["status"] == "ignored":
            for line in ignore_conditions(latest):
                console.print(f"  {line}")
    table = Table("changed at", "status", "by", "note", title="history")
    for changed_at, st, by, note in status_history(client, settings, fp):
        table.add_row(_when(changed_at), f"[{STATUS_STYLE[st]}]{st}[/]", by, note)
    console.print(table)
    _print_merges(merges)


def _print_merges(merges: list[dict[str, Any]]) -> None:
    if not merges:
        return
    table = Table("changed at", "action", "fingerprint", "into", "by", "note", title="merges")
    for m in merges:
        table.add_row(_when(m["changed_at"]), m["action"], m["fingerprint"], m["primary"] or "—", m["changed_by"],
                      m["note"])
    console.print(table)


@issue_app.command("list")
def list_issues(
    status: Annotated[list[str] | None, typer.Option("--status", "-s", help="only these statuses (repeat)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, most recently changed first")] = 50,
    timeout: Timeout = None,
) -> None:
    """Issues whose status was changed, most recent first (a merged group is one row, with its summed count)."""
    settings = get_settings()
    table = Table("fingerprint", "status", "changed at", "by", "note", "events", "merged", "title")
    for fp, st, changed_at, by, note, title, events, merged in list_statuses(_client(settings), settings,
                                                                              status or [], limit):
        table.add_row(fp, f"[{STATUS_STYLE[st]}]{st}[/]", _when(changed_at), by, note, str(events),
                      f"+{merged}" if merged else "", title)
    console.print(table)
