"""``errstream bench …``: benchmarks that print numbers, from a source checkout.

The benchmarks live in the top-level ``bench`` package, which is not part of
the installed wheel; each command imports it only when it runs, so the rest of
the CLI works without it, and an installed copy says so in one line (exit 2).
Every command prints its figures (or, with ``--json``, one JSON document on
stdout, progress on stderr) and appends them to ``ERRSTREAM_HOME/bench/results.jsonl``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from errstream_core.settings import get_settings

bench_app = typer.Typer(help="Benchmarks that print numbers (from a source checkout).", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document (progress goes to stderr)")]


def _checkout_root() -> Path | None:
    """The source checkout this ``errstream`` package runs from (an editable install), if it has ``bench/``."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "bench" / "__init__.py").is_file() else None


def _bench(module: str) -> ModuleType:
    """``bench.<module>``; one clear line and exit 2 where the benchmarks are not installed.

    An editable install puts only the shipped packages on ``sys.path``, so the
    checkout that holds this package is added when ``bench`` is next to it:
    ``errstream bench`` then works from any directory.
    """
    root = _checkout_root()
    if root is not None and str(root) not in sys.path:
        sys.path.append(str(root))
    try:
        return importlib.import_module(f"bench.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("bench", f"bench.{module}"):
            raise
        typer.echo("errstream bench: the benchmarks are not installed (they ship with the source checkout, not the "
                   "package); run it from a checkout of errstream", err=True)
        raise typer.Exit(2) from None


def _progress(as_json: bool) -> Callable[[str], None]:
    """Where progress lines go: stderr when stdout carries the JSON document."""
    def out(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

    return out


def _emit(bench: str, params: dict[str, Any], figures: dict[str, Any], lines: list[str], as_json: bool) -> None:
    harness = _bench("harness")
    harness.emit(get_settings(), bench, params, figures, lines, as_json, out=lambda line: print(line, flush=True))


@bench_app.command("sdk")
def bench_sdk(events: int = 50_000, rate: float = 5_000.0, as_json: JsonOption = False) -> None:
    """SDK benchmark: caller-thread cost of capture_exception (p50/p99 µs) and send throughput (needs a broker)."""
    figures = _bench("ingest").bench_sdk(get_settings(), events, rate, out=_progress(as_json))
    _emit("sdk", {"events": events, "rate": rate}, figures, [], as_json)


@bench_app.command("gateway")
def bench_gateway(seconds: float = 15.0, connections: int = 64, driver: str = "auto", runs: int = 3,
                  warmup: float = 3.0, mode: str = "sentry", as_json: JsonOption = False) -> None:
    """Gateway benchmark: events/s on one worker process, median of --runs passes after a warm-up
    (driver: wrk if installed, else httpx; mode: sentry envelopes, otlp or otlp-json trace exports)."""
    figures = _bench("ingest").bench_gateway(get_settings(), seconds, connections, driver, runs, warmup,
                                             out=_progress(as_json), mode=mode)
    params = {"seconds": seconds, "connections": connections, "driver": driver, "runs": runs, "warmup": warmup,
              "mode": mode}
    _emit("gateway", params, figures, [], as_json)


@bench_app.command("gateway-cpu")
def bench_gateway_cpu(requests: int = 3_000, rounds: int = 6, concurrency: int = 64, kafka: bool = True,
                      as_json: JsonOption = False) -> None:
    """CPU per event of the gateway's request path, Sentry envelopes and OTLP exports interleaved in one process
    (the ASGI app called directly with its real Kafka publisher, which needs a broker; --no-kafka drops the
    events at the publisher)."""
    figures = _bench("ingest").bench_gateway_cpu(get_settings(), requests, rounds, concurrency,
                                                 out=_progress(as_json), kafka=kafka)
    params = {"requests": requests, "rounds": rounds, "concurrency": concurrency, "kafka": kafka}
    _emit("gateway-cpu", params, figures, [], as_json)


@bench_app.command("core")
def bench_core(
    events: Annotated[int, typer.Option(help="events to process")] = 50_000,
    passes: Annotated[int, typer.Option(help="passes over the events; the fastest is reported")] = 3,
    profile: Annotated[bool, typer.Option(help="one pass under cProfile, with its top functions")] = False,
    as_json: JsonOption = False,
) -> None:
    """Events/s on one core for validate + scrub + fingerprint + sample (20-frame stacks)."""
    result, pinned, profile_text = _bench("core").run(events, passes=passes, profile=profile)
    lines = [f"{pinned}; {'one pass under cProfile (slower)' if profile else f'fastest of {passes} passes'}",
             result.report(), *([profile_text] if profile_text else [])]
    _emit("core", {"events": events, "passes": passes, "profile": profile}, result.figures(), lines, as_json)


@bench_app.command("worker")
def bench_worker(events: int = 20_000, detection: bool = True, as_json: JsonOption = False) -> None:
    """CPU per event of a real worker process (Kafka in and out, processing, detection), on fresh topics."""
    result = _bench("worker").run_worker_bench(get_settings(), events, detection)
    _emit("worker", {"events": events, "detection": detection}, result.figures(), result.lines(), as_json)


@bench_app.command("alerts")
def bench_alerts(rate: int = 5_000, seconds: float = 30.0, probes: float = 10.0, workers: int = 1,
                 as_json: JsonOption = False) -> None:
    """Alert latency (publish → alert on `alerts`) at a background load, with real workers on fresh topics."""
    result = _bench("alerts").run_alert_latency_bench(get_settings(), rate, seconds, probes, workers)
    params = {"rate": rate, "seconds": seconds, "probes": probes, "workers": workers}
    _emit("alerts", params, result.figures(), result.lines(), as_json)


@bench_app.command("spikes")
def bench_spikes(series: int = 50, minutes: int = 10_080, dispersion: float = 10.0, seed: int = 1,
                 cold: Annotated[bool, typer.Option(help="no bootstrap: the detector starts with no history")] = False,
                 as_json: JsonOption = False) -> None:
    """Spike detection on simulated traffic with daily and weekly cycles (event time): false alerts per
    service-week, sustained rises and bursts caught."""
    from stream_processors.detection_rules.config import DetectionConfig

    spikes = _bench("spikes")
    cfg = DetectionConfig.from_settings(get_settings())
    result = spikes.run_spike_bench(series, minutes, seed, cfg, dispersion=dispersion, cold=cold)
    params = {"series": series, "minutes": minutes, "dispersion": dispersion, "seed": seed, "cold": cold}
    _emit("spikes", params, spikes.figures(result), spikes.report_lines(result, cfg), as_json)


@bench_app.command("notify")
def bench_notify(paced: int = 300, rate: float = 50.0, burst: int = 2_000, as_json: JsonOption = False) -> None:
    """Alert → webhook latency and burst throughput through a real `errstream notify`, with the storage check."""
    notify = _bench("notify")
    result = notify.run_notify_bench(get_settings(), paced, rate, burst, progress=_progress(as_json))
    _emit("notify", {"paced": paced, "rate": rate, "burst": burst}, result,
          notify.report_lines(result, paced, rate, burst), as_json)


@bench_app.command("clickhouse-load")
def bench_clickhouse_load(
    events: Annotated[int, typer.Option(help="events counted (error_occurrences_in)")] = 10_000_000,
    raw: Annotated[int, typer.Option(help="raw events stored (error_events)")] = 3_000_000,
    client_events: Annotated[int, typer.Option(help="events through the sink's clickhouse-connect path")] = 100_000,
    client_batch: int = 50_000,
    groups: Annotated[int, typer.Option(help="distinct issues")] = 5_000,
    days: int = 7,
    chunk: int = 1_000_000,
    repeat: Annotated[int, typer.Option(help="runs of each query (best and worst are reported)")] = 3,
    url: Annotated[str | None, typer.Option(help="an existing ClickHouse (default: an embedded one)")] = None,
    keep: Annotated[bool, typer.Option(help="keep the database and the embedded store")] = False,
    as_json: JsonOption = False,
) -> None:
    """Millions of generated events in ClickHouse: insert rates, report query times, storage per million."""
    load = _bench("clickhouse_load")
    result = load.run_clickhouse_load(get_settings(), events, raw, client_events, client_batch, groups, days, chunk,
                                      repeat, url, keep, progress=_progress(as_json))
    params = {"events": events, "raw": raw, "client_events": client_events, "client_batch": client_batch,
              "groups": groups, "days": days, "chunk": chunk, "repeat": repeat, "url": url}
    _emit("clickhouse-load", params, result, load.report_lines(result), as_json)


@bench_app.command("web")
def bench_web(events: int = 1_000_000, raw: int = 200_000, groups: int = 5_000, requests: int = 100,
              days: int = 14, live_rounds: int = 5,
              url: Annotated[str | None, typer.Option(help="an existing ClickHouse (a throwaway database there); "
                                                           "default: an embedded one on a free port")] = None,
              as_json: JsonOption = False) -> None:
    """Web app latency over a generated history, on its own embedded ClickHouse: every page and API call
    (p50/p95) and the live stream (a new issue on an open stream page)."""
    result = _bench("web").run_web_bench(events, raw, groups, requests, days, url, live_rounds,
                                         out=_progress(as_json))
    params = {"events": events, "raw": raw, "groups": groups, "requests": requests, "days": days,
              "live_rounds": live_rounds, "url": url}
    _emit("web", params, result.figures(), [], as_json)


@bench_app.command("e2e")
def bench_e2e(
    events: Annotated[int, typer.Option(help="events published at once for the drain figure")] = 50_000,
    rate: Annotated[int, typer.Option(help="events/s of the steady load")] = 5_000,
    seconds: Annotated[float, typer.Option(help="duration of the steady load")] = 20.0,
    workers: Annotated[int, typer.Option(help="worker processes (one consumer group)", min=1)] = 1,
    probe_interval: Annotated[float, typer.Option(help="seconds between latency probes")] = 0.1,
    as_json: JsonOption = False,
) -> None:
    """The whole local stack: drain rate vs a raw publish, produce→queryable latency at a steady rate, peak RSS."""
    result = _bench("e2e").run_e2e(get_settings(), events, rate, seconds, workers, probe_interval,
                                   progress=_progress(as_json))
    params = {"events": events, "rate": rate, "seconds": seconds, "workers": workers, "probe_interval": probe_interval}
    _emit("e2e", params, result.figures(), result.lines(), as_json)


@bench_app.command("compare")
def bench_compare(
    bench: Annotated[str, typer.Argument(help="the benchmark: e2e, worker, sink, core, alerts, …")] = "e2e",
    against: Annotated[str | None, typer.Option(help="an earlier run's git commit (prefix); default: the run "
                                                     "before the latest")] = None,
) -> None:
    """The latest recorded run of a benchmark beside an earlier one: each figure and its ratio."""
    compare = _bench("compare")
    results = _bench("harness").bench_home(get_settings()) / "results.jsonl"
    try:
        earlier, latest = compare.pick(compare.load(results, bench), against)
    except ValueError as exc:
        typer.echo(f"errstream bench compare: {exc} (in {results})", err=True)
        raise typer.Exit(1) from None
    for line in compare.table(earlier, latest):
        typer.echo(line)
