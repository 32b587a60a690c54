"""``errstream alerts tail``: follow the alerts topic in the terminal.

It reads without a consumer group (no offsets committed, nothing taken from
the real consumers) and pins its start position before printing the banner, so
an alert published after the banner is never missed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from errstream.cli_errors import CliError, Timeout, command_timeout
from errstream_core.settings import Settings, get_settings
from schemas.alert_rules import AlertRules, AlertRulesError, filtered_destinations, parse_alert_rules
from schemas.alerts import AlertEvent

alerts_app = typer.Typer(help="Alerts on the `alerts` topic.", no_args_is_help=True)

SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red", "critical": "bold white on red"}


def format_alert(alert: AlertEvent) -> Text:
    """One alert as a line (plus its message, indented), coloured by severity."""
    line = Text()
    line.append(f"{alert.created_at:%Y-%m-%d %H:%M:%S}Z ", style="dim")
    line.append(f"{alert.severity.upper():<8}", style=SEVERITY_STYLE[alert.severity])
    line.append(f" {alert.kind:<11} ", style="bold")
    line.append(f"{alert.service}  ", style="magenta")
    line.append(alert.title)
    if alert.fingerprint:
        line.append(f"  [{alert.fingerprint[:12]}]", style="dim")
    if alert.message:
        line.append(f"\n    {alert.message}", style="dim")
    return line


async def tail_alerts(settings: Settings, *, from_beginning: bool, as_json: bool, max_alerts: int | None,
                      out: Console, err: Console, timeout: float = 10.0) -> int:
    """Follow the topic; ``timeout`` bounds connecting (a broker that is down raises, never retried forever)."""
    from aiokafka import AIOKafkaConsumer

    from errstream_core.topics import ensure_topics

    topic = settings.topic_alerts
    await ensure_topics(settings, [topic], timeout=timeout)  # also waits for the partitions' leaders
    # Without a group, a subscribed consumer is assigned every partition of the topic (no coordinator).
    # The start comes from the reset policy: an explicit seek_to_beginning raced with the default "latest"
    # reset in aiokafka 0.14 and could land at the end.
    consumer = AIOKafkaConsumer(topic, **settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest" if from_beginning else "latest")
    shown = 0
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (tps := sorted(consumer.assignment())):  # the consumer's metadata may lag a moment
            if loop.time() > deadline:
                raise CliError(f"topic {topic!r} has no partitions in the metadata of Kafka at "
                               f"{settings.kafka_bootstrap} after {timeout:g} s")
            await asyncio.sleep(0.25)
        for tp in tps:
            await consumer.position(tp)  # resolve now, not at the first fetch
        err.print(f"[dim]following {topic!r}{' from the beginning' if from_beginning else ''} (Ctrl-C to stop)[/]")
        while max_alerts is None or shown < max_alerts:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, msgs in sorted(batches.items()):
                for m in msgs:
                    if as_json:
                        sys.stdout.write((m.value or b"").decode("utf-8", errors="replace") + "\n")
                        sys.stdout.flush()
                    else:
                        try:
                            out.print(format_alert(AlertEvent.model_validate_json(m.value or b"")))
                        except ValidationError as exc:
                            err.print(f"[dim]unreadable record at {tp.topic}[{tp.partition}]@{m.offset}: "
                                      f"{exc.error_count()} problem(s)[/]")
                    shown += 1
                    if max_alerts is not None and shown >= max_alerts:
                        return shown
    finally:
        await consumer.stop()
    return shown


@alerts_app.command("tail")
def tail(
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="start at the oldest retained alert")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw JSON records, one per line")] = False,
    max_alerts: Annotated[int | None, typer.Option("--max", "-n", help="exit after N alerts")] = None,
    timeout: Timeout = None,
) -> None:
    """Follow the alerts topic, coloured by severity."""
    try:
        asyncio.run(tail_alerts(get_settings(), from_beginning=from_beginning, as_json=as_json,
                                max_alerts=max_alerts, out=Console(highlight=False), err=Console(stderr=True),
                                timeout=command_timeout()))
    except KeyboardInterrupt:
        pass


alert_rules_app = typer.Typer(help="Alert rules as code (a TOML file): check, then apply without restarting.",
                              no_args_is_help=True)
alerts_app.add_typer(alert_rules_app, name="rules")


def _load_rules(path: Path) -> tuple[str, AlertRules]:
    console = Console(soft_wrap=True)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        console.print(f"[red]error:[/red] cannot read {path}: {exc}")
        raise typer.Exit(2) from None
    settings = get_settings()
    try:
        rules = parse_alert_rules(text, settings.destination_names)
        if problems := filtered_destinations(rules, [*settings.alert_webhooks, *settings.alert_emails]):
            raise AlertRulesError(problems)
        return text, rules
    except AlertRulesError as exc:
        for problem in exc.problems:
            console.print(f"[red]{path}:[/red] {problem}", highlight=False)
        raise typer.Exit(1) from None


@alert_rules_app.command("check")
def rules_check(path: Annotated[Path, typer.Argument(help="alert rules (TOML; see docs/notifications.md)")]) -> None:
    """Validate an alert rules file: every problem with its line, destinations checked against the configuration."""
    _, rules = _load_rules(path)
    Console(soft_wrap=True).print(f"{path}: {len(rules.rules)} rule(s) ok")


@alert_rules_app.command("apply")
def rules_apply(path: Annotated[Path, typer.Argument(help="alert rules (TOML)")], timeout: Timeout = None) -> None:
    """Publish an alert rules file; `errstream notify` switches to it without restarting."""
    from producers.rule_files import publish_alert_rules
    from stream_processors.grouping_rules import rules_version

    text, rules = _load_rules(path)
    version = rules_version(text)
    asyncio.run(publish_alert_rules(get_settings(), text, version, timeout=command_timeout()))
    Console(soft_wrap=True).print(f"alert rules {version} published ({len(rules.rules)} rule(s))")
