"""The ``errstream`` command line."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from errstream.alerts_cli import alerts_app
from errstream.bench_cli import bench_app
from errstream.cli_errors import OPTIONS, ErrorReportingGroup, Timeout
from errstream.issue_cli import issue_app
from errstream.rules_cli import grouping_app, rules_app
from errstream.web.cli import web_app
from errstream_core.kafka_logging import quiet_transient_kafka_logs
from errstream_core.settings import Settings, get_settings

app = typer.Typer(
    help="errstream: error tracking on Kafka, faust and ClickHouse.", no_args_is_help=True,
    pretty_exceptions_enable=False, cls=ErrorReportingGroup,
)
local_app = typer.Typer(help="Local Kafka broker and embedded ClickHouse, without Docker.", no_args_is_help=True)
schema_app = typer.Typer(help="The event contract.", no_args_is_help=True)
detect_app = typer.Typer(help="Detection rules, tried on stored traffic before they go live.", no_args_is_help=True)
app.add_typer(local_app, name="local")
app.add_typer(schema_app, name="schema")
app.add_typer(bench_app, name="bench")
app.add_typer(issue_app, name="issue")
app.add_typer(alerts_app, name="alerts")
# Grouping rules live under `errstream grouping rules`, beside `errstream alerts rules` (alert rules);
# `errstream rules` stays as the short name of the grouping rules for scripts written before.
grouping_app.add_typer(rules_app, name="rules")
app.add_typer(rules_app, name="rules", help="Grouping rules (the same as `errstream grouping rules`).")
app.add_typer(grouping_app, name="grouping")
app.add_typer(web_app, name="web")
app.add_typer(detect_app, name="detect")
console = Console()
err_console = Console(stderr=True)
SERVICES = {"worker", "sink", "notify", "gateway", "demo"}  # long-running: they log rather than print one error


@app.callback()
def global_options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", envvar="ERRSTREAM_DEBUG",
                                        help="show tracebacks and the Kafka client's own log lines")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", envvar="ERRSTREAM_TIMEOUT", min=0.1,
        help="seconds to wait for Kafka/ClickHouse before giving up (one-shot commands: 10; sink, notify: "
             "ERRSTREAM_STARTUP_TIMEOUT)")] = None,
) -> None:
    """Options for every command (before the command: `errstream --debug --timeout 3 report`)."""
    OPTIONS.debug, OPTIONS.timeout = debug, timeout
    # A one-shot command reports a server that is down once, itself: the client's per-retry lines add nothing.
    # Services keep one "cannot connect" line a minute in their log.
    quiet_transient_kafka_logs(silence_unreachable=not debug and ctx.invoked_subcommand not in SERVICES)
    for noisy in ("clickhouse_connect", "urllib3.connectionpool"):  # they log, then raise what is reported
        logging.getLogger(noisy).setLevel(logging.NOTSET if debug else logging.ERROR)
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _service_settings() -> Settings:
    """Settings of a long-running role; the global --timeout bounds its wait for servers at start."""
    settings = get_settings()
    if OPTIONS.timeout is not None:
        settings = settings.model_copy(update={"startup_timeout": OPTIONS.timeout})
    return settings


def _local(settings: Settings, brokers: int | None = None) -> tuple[object, object]:
    from errstream.local.clickhouse import LocalClickHouse
    from errstream.local.kafka import LocalKafka

    if brokers is None:  # down/status: the layout that runs (a cluster's state lives in kafka-cluster-<n>)
        running = [int(p.parent.name.rsplit("-", 1)[1]) for p in settings.home.glob("kafka-cluster-*/kafka-1.pid")]
        brokers = running[0] if running else settings.local_kafka_brokers
    kafka = LocalKafka(
        state_dir=settings.home, cache_dir=settings.cache_dir, version=settings.kafka_version,
        port=settings.local_kafka_port, partitions=settings.topic_partitions, brokers=brokers,
    )
    clickhouse = LocalClickHouse(state_dir=settings.home, port=settings.local_clickhouse_port)
    return kafka, clickhouse


@local_app.command("up")
def local_up(
    brokers: Annotated[int | None, typer.Option(
        min=1, max=9, help="Kafka brokers: 3 = a KRaft quorum of three broker/controller nodes on ports "
        "port..port+5, topics replicated 3 times with min.insync.replicas 2 (default ERRSTREAM_LOCAL_KAFKA_BROKERS"
        " = 1)")] = None,
) -> None:
    """Start Kafka (resolving its jars with Maven on first use) and embedded ClickHouse."""
    from errstream.local.kafka import KafkaSetupError

    settings = get_settings()
    kafka, clickhouse = _local(settings, brokers or settings.local_kafka_brokers)
    try:
        console.print(f"kafka      {kafka.up()}")  # type: ignore[attr-defined]
        console.print(f"clickhouse {clickhouse.up()}")  # type: ignore[attr-defined]
    except (KafkaSetupError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    for line in clickhouse.how_to_connect():  # type: ignore[attr-defined]
        console.print(f"{'':<10} {line}", markup=False, highlight=False, soft_wrap=True)


@local_app.command("down")
def local_down() -> None:
    """Stop what `local up` started, and the web app and notify that `errstream demo` left running."""
    from errstream.local.roles import BACKGROUND_ROLES, background_role

    settings = get_settings()
    for role in BACKGROUND_ROLES:  # what `errstream demo` left running; silent when there is none
        if background_role(role, settings).stop(timeout=15):
            console.print(f"{role:<10} stopped")
    kafka, clickhouse = _local(settings)
    for name, svc in (("clickhouse", clickhouse), ("kafka", kafka)):
        console.print(f"{name:<10} {'stopped' if svc.down() else 'was not running'}")  # type: ignore[attr-defined]


@local_app.command("status")
def local_status() -> None:
    """Say what runs where."""
    kafka, clickhouse = _local(get_settings())
    for name, svc in (("kafka", kafka), ("clickhouse", clickhouse)):
        status = svc.status()  # type: ignore[attr-defined]
        console.print(f"{name:<10} {status or 'not running'}")
        if name == "clickhouse" and status:
            for line in clickhouse.how_to_connect():  # type: ignore[attr-defined]
                console.print(f"{'':<10} {line}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def migrate(timeout: Timeout = None) -> None:
    """Create or upgrade the ClickHouse schema (idempotent)."""
    from errstream.cli_errors import command_timeout
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrate import migrate as run

    settings = get_settings()
    applied = run(settings, connect(settings, connect_timeout=command_timeout()))
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@app.command()
def worker(loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "warn") -> None:
    """Run a stream-processor worker (scale out by starting more; they share one consumer group)."""
    from stream_processors.runner import run_worker

    run_worker(get_settings(), loglevel=loglevel)


def _service_logging() -> None:
    """Log lines with time and level; a broker outage shows as one aiokafka line a minute, not one a retry."""
    logging.basicConfig(level=logging.DEBUG if OPTIONS.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _run_until_signal(coro_factory: object) -> None:
    """Run until SIGTERM/SIGINT; then the consumers get ``shutdown_seconds`` to finish, commit and leave.

    A watchdog bounds the exit even if a call hangs (a ClickHouse request in a thread cannot be
    cancelled): what is not committed by then is replayed idempotently by the next owner.
    """
    from errstream_core.shutdown import exit_after

    settings = get_settings()

    def on_signal(stop: asyncio.Event) -> None:
        if not stop.is_set():
            exit_after(settings.shutdown_seconds + 2, "errstream")
        stop.set()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, stop)
        await coro_factory(stop)  # type: ignore[operator]

    asyncio.run(main())


@app.command()
def sink(timeout: Timeout = None) -> None:
    """Run the ClickHouse sink (batched, idempotent inserts; commits after each insert)."""
    from errstream_core.metrics_server import serve_metrics
    from sinks.clickhouse.event_sink import ClickHouseSink

    settings = _service_settings()
    _service_logging()
    serve_metrics(settings)
    _run_until_signal(lambda stop: ClickHouseSink(settings).run(stop))


@app.command()
def notify(
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="alerts, chains, status, merges, sessions, rules, escalation or digest (repeat); default: all")] = None,
    timeout: Timeout = None,
) -> None:
    """Run the alerts (ClickHouse + delivery), chains, issue-status and sessions consumers and the periodic
    rules, escalation and digest tasks (docs/notifications.md)."""
    from errstream_core.metrics_server import serve_metrics
    from sinks.notify.service import ROLES, run_notify

    if unknown := sorted(set(only or ()) - set(ROLES)):
        console.print(f"[red]error:[/red] unknown consumer(s) {unknown}; choose from {ROLES}")
        raise typer.Exit(2)
    settings = _service_settings()
    _service_logging()
    serve_metrics(settings)  # /metrics: counters, and what the compose healthcheck asks
    _run_until_signal(lambda stop: run_notify(settings, stop, only or ()))


@app.command()
def send(
    file: Annotated[Path | None, typer.Argument(help="JSON file: one event, a list, or JSON lines; - for stdin")] = None,
    synthetic: Annotated[int, typer.Option(help="publish N synthetic events instead")] = 0,
    service: Annotated[str | None, typer.Option(help="service for synthetic events")] = None,
    timeout: Timeout = None,
) -> None:
    """Publish events to the `errors` topic (smoke tests)."""
    from errstream.cli_errors import command_timeout
    from producers.send import send_events

    n = asyncio.run(send_events(get_settings(), file, synthetic, service, timeout=command_timeout()))
    console.print(f"published {n} event(s) to {get_settings().topic_errors}")


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="default ERRSTREAM_GATEWAY_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default ERRSTREAM_GATEWAY_PORT")] = None,
) -> None:
    """HTTP ingestion gateway: our JSON events and Sentry envelopes/store → the `errors` topic."""
    from producers.gateway.app import serve

    serve(get_settings(), host, port)


@app.command()
def demo(events: Annotated[int, typer.Option(help="events to publish")] = 3000) -> None:
    """Start everything locally, publish a realistic mix of errors and show what landed in ClickHouse."""
    from errstream.demo import run_demo

    raise typer.Exit(run_demo(get_settings(), events, console))


@app.command()
def report(
    since: Annotated[str, typer.Option(help="window: 30m, 24h, 7d, 2w")] = "24h",
    service: Annotated[str | None, typer.Option(help="only this service")] = None,
    top: Annotated[int, typer.Option(help="top issues to list")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
    html: Annotated[Path | None, typer.Option(help="also write a self-contained HTML page")] = None,
    timeout: Timeout = None,
) -> None:
    """Overview, top issues, timeline, spikes and error chains from ClickHouse."""
    from errstream.report_cli import run_report

    raise typer.Exit(run_report(get_settings(), since, service, top, as_json, html, console))


@app.command()
def watch(
    interval: Annotated[float, typer.Option(min=1.0, max=3600.0, help="seconds between refreshes")] = 5.0,
    minutes: Annotated[int, typer.Option(min=1, max=60, help="the window: rates over the last N minutes")] = 5,
    top: Annotated[int, typer.Option(min=1, max=100, help="issues to show")] = 10,
    service: Annotated[str | None, typer.Option(help="only this service")] = None,
    level: Annotated[str | None, typer.Option(help="only this level and above (debug … critical)")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="plain lines, no refresh in place (logs, dumb terminals)")]
    = False,
    count: Annotated[int | None, typer.Option(min=1, help="stop after N refreshes (default: until Ctrl-C)")] = None,
    timeout: Timeout = None,
) -> None:
    """Live view of errors: top issues with their rates and trend, new issues, spikes, recovery rates."""
    from errstream.watch_cli import run_watch

    raise typer.Exit(run_watch(get_settings(), interval=interval, minutes=minutes, top=top, service=service,
                               level=level, plain=plain, count=count, console=console))


@app.command()
def digest(fmt: Annotated[str, typer.Option("--format", help="text, slack (Block Kit JSON) or json")] = "text") -> None:
    """The daily digest as it would be sent now: new issues, top issues, regressions, error-rate change."""
    import orjson

    from sinks.clickhouse.client import connect
    from sinks.delivery.digest import build_digest, render_slack, render_text

    if fmt not in ("text", "slack", "json"):
        console.print(f"[red]error:[/red] --format must be text, slack or json, not {fmt!r}")
        raise typer.Exit(2)
    settings = get_settings()
    d = build_digest(connect(settings), settings.clickhouse_database)
    if fmt == "text":
        typer.echo(render_text(d, settings.web_base_url))
    else:
        payload = render_slack(d, settings.web_base_url) if fmt == "slack" else d.to_json()
        typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


@detect_app.command("backtest")
def detect_backtest(
    since: Annotated[str, typer.Option(help="window to replay: 30m, 24h, 7d, 2w")] = "14d",
    rules: Annotated[Path | None, typer.Option(help="TOML file of [[rule]] variants (default: current settings)")]
    = None,
    service: Annotated[str | None, typer.Option(help="only this service")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the alerts as JSON for scripts")] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", help="also write a self-contained HTML report: per rule and service, counts, expected band and "
        "alerts (inline SVG, no script)")] = None,
    timeout: Timeout = None,
) -> None:
    """Replay ClickHouse's per-minute counts through the spike detector: the alerts each rule would have raised."""
    from datetime import UTC, datetime

    import orjson

    from errstream.cli_errors import command_timeout
    from reports.backtest import MAX_WINDOW, load_rules, minute_counts, render, run_backtest
    from reports.report import parse_since
    from sinks.clickhouse.client import connect
    from stream_processors.detection_rules.config import DetectionConfig

    settings = get_settings()
    try:
        window = parse_since(since)
        if window > MAX_WINDOW:
            raise ValueError(f"--since is at most {MAX_WINDOW.days}d for a backtest (minute counts of every service)")
        variants = load_rules(rules, DetectionConfig.from_settings(settings))
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - window
    client = connect(settings, connect_timeout=command_timeout(), send_receive_timeout=max(60, command_timeout()))
    counts = minute_counts(client, settings.clickhouse_database, start, end, service)
    alerts = run_backtest(variants, counts)
    if html is not None:
        from reports.backtest_html import render_html

        try:
            html.write_text(render_html(variants, counts, alerts, start, end), encoding="utf-8")
        except OSError as exc:
            console.print(f"[red]error:[/red] cannot write {html}: {exc.strerror or exc}")
            raise typer.Exit(1) from None
        err_console.print(f"wrote {html} ({len(alerts)} alerts, {len(counts)} services)")
    if as_json:
        typer.echo(orjson.dumps([
            {"rule": a.rule, "service": a.service, "minute": datetime.fromtimestamp(a.minute, UTC).isoformat(),
             "pattern": a.pattern, "count": a.count, "expected": round(a.expected, 3), "title": a.title}
            for a in alerts], option=orjson.OPT_INDENT_2).decode())
        return
    for line in render(variants, counts, alerts, start, end):
        typer.echo(line)


@schema_app.command("export")
def schema_export(directory: Path) -> None:
    """Write JSON Schema files for non-Python producers."""
    from schemas.export import export_json_schemas

    for path in export_json_schemas(directory):
        print(path)  # whole paths, one a line: rich would wrap long ones where no terminal is


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
