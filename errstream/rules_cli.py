"""``errstream rules …`` (server-side grouping rules) and ``errstream grouping explain``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from errstream.cli_errors import Timeout, command_timeout
from errstream_core.settings import get_settings

if TYPE_CHECKING:
    from stream_processors.grouping_rules import GroupingRules

# The grouping code (normalizer, scrubber patterns, platform tables) is imported by the commands that use
# it: `errstream.cli` imports this module to register the commands, and every `errstream sink` or `notify`
# process would otherwise load it (about 0.2 s of CPU each) for nothing.

rules_app = typer.Typer(help="Server-side grouping rules: check and apply without redeploying apps.",
                        no_args_is_help=True)
grouping_app = typer.Typer(help="How events are grouped.", no_args_is_help=True)
console = Console(soft_wrap=True)  # a line is a fact: never wrapped, so it stays greppable

RulesFile = Annotated[Path, typer.Argument(help="rules file (one rule a line; see docs/grouping.md)")]


def _load(path: Path) -> GroupingRules:
    from stream_processors.grouping_rules import RulesError, parse_rules

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        console.print(f"[red]error:[/red] cannot read {path}: {exc}")
        raise typer.Exit(2) from None
    try:
        return parse_rules(text)
    except RulesError as exc:
        for problem in exc.problems:
            console.print(f"[red]{path}:[/red] {problem}", highlight=False)
        raise typer.Exit(1) from None


@rules_app.command("check")
def check(path: RulesFile) -> None:
    """Validate a rules file: every bad line is reported with its number and reason."""
    rules = _load(path)
    console.print(f"{path}: {len(rules.fingerprint_rules)} fingerprint rule(s), {len(rules.stack_rules)} stack "
                  f"rule(s); version {rules.version}")


@rules_app.command("apply")
def apply(path: RulesFile,
          delay: Annotated[float | None, typer.Option(help="seconds until it takes effect (at least the "
                                                             "configured ERRSTREAM_GROUPING_RULES_DELAY_SECONDS)")]
          = None, timeout: Timeout = None) -> None:
    """Publish a rules file; every worker switches to it at the same recorded point."""
    from producers.rule_files import publish_grouping_rules

    rules = _load(path)
    effective = asyncio.run(publish_grouping_rules(get_settings(), rules.text, rules.version, delay,
                                          timeout=command_timeout()))
    when = datetime.fromtimestamp(effective / 1000, UTC)
    console.print(f"rules {rules.version} published; events received from {when:%Y-%m-%d %H:%M:%S} UTC on are "
                  "grouped with them")


@grouping_app.command("explain")
def explain(event_file: Annotated[Path, typer.Argument(help="one event as JSON (errstream's event schema)")],
            rules_file: Annotated[Path | None, typer.Option("--rules", help="apply this rules file")] = None) -> None:
    """The parts of an event's grouping key, the rules that fired, the fingerprint and the title."""
    from schemas.events import ErrorEvent as EventModel
    from schemas.fast import event_from_model
    from stream_processors.fingerprint import group_event
    from stream_processors.scrub import Scrubber

    try:
        model = EventModel.model_validate_json(event_file.read_bytes())
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot read {event_file}: {exc}")
        raise typer.Exit(2) from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(event)'}: {e['msg']}" for e in exc.errors()[:5])
        console.print(f"[red]error:[/red] {event_file} is not an event: {problems}", highlight=False)
        raise typer.Exit(2) from None
    rules = _load(rules_file) if rules_file is not None else None
    event = event_from_model(model)
    Scrubber().scrub(event)  # the worker groups the scrubbed event
    trace: list[str] = []
    version = get_settings().grouping_version  # the worker's (ERRSTREAM_GROUPING_VERSION)
    grouping = group_event(event, rules, trace, version=version)
    for line in trace:
        console.print(line, highlight=False, markup=False)
    console.print(f"grouping:    version {version}, platform {event.platform}", highlight=False)
    console.print(f"rules:       {rules.version if rules else '(none)'}", highlight=False)
    console.print(f"fingerprint: {grouping.fingerprint}", highlight=False)
    console.print(f"title:       {grouping.title}", highlight=False, markup=False)
    console.print(f"culprit:     {grouping.culprit}", highlight=False, markup=False)
