"""The ``errstream`` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from errstream.alerts_cli import alerts_app
from errstream.issue_cli import issue_app
from errstream_core.settings import Settings, get_settings

app = typer.Typer(
    help="errstream: error tracking on Kafka, faust and ClickHouse.", no_args_is_help=True,
    pretty_exceptions_enable=False,
)
local_app = typer.Typer(help="Local Kafka broker and embedded ClickHouse, without Docker.", no_args_is_help=True)
schema_app = typer.Typer(help="The event contract.", no_args_is_help=True)
app.add_typer(local_app, name="local")
app.add_typer(schema_app, name="schema")
bench_app = typer.Typer(help="Benchmarks that print numbers.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(issue_app, name="issue")
app.add_typer(alerts_app, name="alerts")
console = Console()


def _local(settings: Settings) -> tuple[object, object]:
    from errstream.local.clickhouse import LocalClickHouse
    from errstream.local.kafka import LocalKafka

    kafka = LocalKafka(
        state_dir=settings.home, cache_dir=settings.cache_dir, version=settings.kafka_version,
        port=settings.local_kafka_port, partitions=settings.topic_partitions,
    )
    clickhouse = LocalClickHouse(state_dir=settings.home, port=settings.local_clickhouse_port)
    return kafka, clickhouse


@local_app.command("up")
def local_up() -> None:
    """Start Kafka (resolving its jars with Maven on first use) and embedded ClickHouse."""
    from errstream.local.kafka import KafkaSetupError

    settings = get_settings()
    kafka, clickhouse = _local(settings)
    try:
        console.print(f"kafka      {kafka.up()}")  # type: ignore[attr-defined]
        console.print(f"clickhouse {clickhouse.up()}")  # type: ignore[attr-defined]
    except (KafkaSetupError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@local_app.command("down")
def local_down() -> None:
    """Stop what `local up` started."""
    kafka, clickhouse = _local(get_settings())
    for name, svc in (("clickhouse", clickhouse), ("kafka", kafka)):
        console.print(f"{name:<10} {'stopped' if svc.down() else 'was not running'}")  # type: ignore[attr-defined]


@local_app.command("status")
def local_status() -> None:
    """Say what runs where."""
    kafka, clickhouse = _local(get_settings())
    for name, svc in (("kafka", kafka), ("clickhouse", clickhouse)):
        console.print(f"{name:<10} {svc.status() or 'not running'}")  # type: ignore[attr-defined]


@app.command()
def migrate() -> None:
    """Create or upgrade the ClickHouse schema (idempotent)."""
    from sinks.migrate import migrate as run

    applied = run(get_settings())
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@app.command()
def worker(loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "warn") -> None:
    """Run a stream-processor worker (scale out by starting more; they share one consumer group)."""
    from stream_processors.runner import run_worker

    run_worker(get_settings(), loglevel=loglevel)


def _run_until_signal(coro_factory: object) -> None:
    """Run until SIGTERM/SIGINT; then the consumers get ``shutdown_seconds`` to finish, commit and leave.

    A watchdog bounds the exit even if a call hangs (a ClickHouse request in a thread cannot be
    cancelled): what is not committed by then is replayed idempotently by the next owner.
    """
    settings = get_settings()

    def watchdog() -> None:
        logging.getLogger("errstream").warning("shutdown took longer than %.0f s; exiting, uncommitted work is "
                                               "replayed by the next owner", settings.shutdown_seconds + 2)
        logging.shutdown()
        os._exit(0)

    def on_signal(stop: asyncio.Event) -> None:
        if not stop.is_set():
            timer = threading.Timer(settings.shutdown_seconds + 2, watchdog)
            timer.daemon = True
            timer.start()
        stop.set()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, stop)
        await coro_factory(stop)  # type: ignore[operator]

    asyncio.run(main())


@app.command()
def sink() -> None:
    """Run the ClickHouse sink (batched, idempotent inserts; commits after each insert)."""
    from errstream_core.metrics_server import serve_metrics
    from sinks.clickhouse_sink import ClickHouseSink

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve_metrics(get_settings())
    _run_until_signal(lambda stop: ClickHouseSink(get_settings()).run(stop))


@app.command()
def notify(
    only: Annotated[list[str] | None, typer.Option("--only", help="alerts, chains or status (repeat); default: all")] = None,
) -> None:
    """Run the alerts (ClickHouse + webhooks), error-chain and issue-status consumers (docs in README)."""
    from sinks.notify_service import CONSUMERS, run_notify

    if unknown := sorted(set(only or ()) - set(CONSUMERS)):
        console.print(f"[red]error:[/red] unknown consumer(s) {unknown}; choose from {sorted(CONSUMERS)}")
        raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    _run_until_signal(lambda stop: run_notify(get_settings(), stop, only or ()))


@app.command()
def send(
    file: Annotated[Path | None, typer.Argument(help="JSON file: one event, a list, or JSON lines; - for stdin")] = None,
    synthetic: Annotated[int, typer.Option(help="publish N synthetic events instead")] = 0,
    service: Annotated[str | None, typer.Option(help="service for synthetic events")] = None,
) -> None:
    """Publish events to the `errors` topic (smoke tests)."""
    from producers.send import send_events

    n = asyncio.run(send_events(get_settings(), file, synthetic, service))
    console.print(f"published {n} event(s) to {get_settings().topic_errors}")


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="default ERRSTREAM_GATEWAY_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default ERRSTREAM_GATEWAY_PORT")] = None,
) -> None:
    """HTTP ingestion gateway: our JSON events and Sentry envelopes/store → the `errors` topic."""
    from producers.gateway.app import serve

    serve(get_settings(), host, port)


@bench_app.command("sdk")
def bench_sdk_cmd(events: int = 50_000, rate: float = 5_000.0) -> None:
    """SDK benchmark: caller-thread cost of capture_exception (p50/p99 µs) and send throughput (needs a broker)."""
    from bench.ingest import bench_sdk

    bench_sdk(get_settings(), events, rate, out=console.print)


@bench_app.command("gateway")
def bench_gateway_cmd(seconds: float = 15.0, connections: int = 64, driver: str = "auto", runs: int = 3,
                      warmup: float = 3.0) -> None:
    """Gateway benchmark: Sentry envelopes/s on one worker process, median of --runs passes after a warm-up
    (driver: wrk if installed, else httpx)."""
    from bench.ingest import bench_gateway

    bench_gateway(get_settings(), seconds, connections, driver, runs, warmup, out=console.print)


@app.command()
def demo(events: Annotated[int, typer.Option(help="events to publish")] = 3000) -> None:
    """Start everything locally, publish a realistic mix of errors and show what landed in ClickHouse."""
    from errstream.demo import run_demo

    raise typer.Exit(run_demo(get_settings(), events, console))


@bench_app.command("core")
def bench_core(
    events: Annotated[int, typer.Option(help="events to process")] = 50_000,
    passes: Annotated[int, typer.Option(help="passes over the events; the fastest is reported")] = 3,
    profile: Annotated[bool, typer.Option(help="one pass under cProfile, with its top functions")] = False,
) -> None:
    """Events/s on one core for validate + scrub + fingerprint + sample (20-frame stacks)."""
    from bench.core import run

    result, pinned, profile_text = run(events, passes=passes, profile=profile)
    console.print(f"{pinned}; {'one pass under cProfile (slower)' if profile else f'fastest of {passes} passes'}")
    console.print(result.report(), highlight=False)
    if profile_text:
        console.print(profile_text, highlight=False, markup=False)


@bench_app.command("worker")
def bench_worker(events: int = 20_000, detection: bool = True) -> None:
    """CPU per event of a real worker process (Kafka in and out, processing, detection), on fresh topics."""
    from bench.worker import run_worker_bench

    for line in run_worker_bench(get_settings(), events, detection).lines():
        typer.echo(line)


@bench_app.command("alerts")
def bench_alerts(rate: int = 5_000, seconds: float = 30.0, probes: float = 10.0, workers: int = 1) -> None:
    """Alert latency (publish → alert on `alerts`) at a background load, with real workers on fresh topics."""
    from bench.alerts import run_alert_latency_bench

    for line in run_alert_latency_bench(get_settings(), rate, seconds, probes, workers).lines():
        typer.echo(line)


@bench_app.command("spikes")
def bench_spikes(series: int = 100, minutes: int = 1_440, dispersion: float = 10.0, seed: int = 1) -> None:
    """Spike false positives on steady noisy traffic (simulated, event time) and bursts caught."""
    from bench.spikes import report_lines, run_spike_bench
    from stream_processors.detectors.config import DetectionConfig

    cfg = DetectionConfig.from_settings(get_settings())
    for line in report_lines(run_spike_bench(series, minutes, seed, cfg, dispersion=dispersion), cfg):
        typer.echo(line)


@app.command()
def report(
    since: Annotated[str, typer.Option(help="window: 30m, 24h, 7d, 2w")] = "24h",
    service: Annotated[str | None, typer.Option(help="only this service")] = None,
    top: Annotated[int, typer.Option(help="top issues to list")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
    html: Annotated[Path | None, typer.Option(help="also write a self-contained HTML page")] = None,
) -> None:
    """Overview, top issues, timeline, spikes and error chains from ClickHouse."""
    from errstream.report_cli import run_report

    raise typer.Exit(run_report(get_settings(), since, service, top, as_json, html, console))


@schema_app.command("export")
def schema_export(directory: Path) -> None:
    """Write JSON Schema files for non-Python producers."""
    from schemas.export import export_json_schemas

    for path in export_json_schemas(directory):
        console.print(str(path))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
