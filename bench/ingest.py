"""Benchmarks of the producer side: the SDK's caller-thread cost and send rate, and the gateway's rate.

    errstream bench sdk      # needs a broker (ERRSTREAM_KAFKA_BOOTSTRAP)
    errstream bench gateway  # starts `errstream gateway` on a free port; drives it with wrk or httpx
    errstream bench gateway --mode otlp  # the same, with OTLP/HTTP protobuf trace exports (POST /v1/traces)

Numbers are printed, not asserted: they depend on the machine and its load.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import harness
from errstream.local.process import cpu_seconds, free_port, wait_for
from errstream_core.settings import Settings
from producers.sdk import Client


# --- a realistic failing call stack --------------------------------------------------------------
class OrderRejected(Exception):
    pass


def _validate(order: dict[str, Any]) -> None:
    if order["qty"] > order["stock"]:
        raise OrderRejected(f"order {order['id']} wants {order['qty']}, {order['stock']} in stock")


def _price(order: dict[str, Any]) -> None:
    _validate(order)


def _checkout(order: dict[str, Any]) -> None:
    _price(order)


def handle_request(n: int) -> None:
    _checkout({"id": n, "qty": 3, "stock": 1})


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    """Caller-cost percentiles in µs (the harness's nearest rank) and the mean."""
    us = [x / 1000 for x in samples_ns]
    pct = harness.percentiles(us, (0.5, 0.9, 0.99, 0.999))
    return {f"{k}_us": v for k, v in pct.items()} | {"mean_us": statistics.fmean(us)}


def _capture_loop(client: Client, n: int, rate: float | None) -> list[int]:
    costs: list[int] = []
    interval = 1.0 / rate if rate else 0.0
    next_at = time.perf_counter()
    for i in range(n):
        try:
            handle_request(i)
        except OrderRejected as exc:
            t0 = time.perf_counter_ns()
            client.capture_exception(exc)
            costs.append(time.perf_counter_ns() - t0)
        if interval:
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    return costs


def bench_sdk(settings: Settings, events: int = 50_000, rate: float = 5_000.0,
              out: Callable[[str], None] = print) -> dict[str, Any]:
    results: dict[str, Any] = {}
    run = harness.new_run("sdk")
    s = harness.fresh_settings(settings, run)
    harness.create_topics(s, [s.topic_errors])
    try:
        return _bench_sdk(s, events, rate, out, results)
    finally:
        harness.delete_run_topics(s, run)


def _bench_sdk(s: Settings, events: int, rate: float, out: Callable[[str], None],
               results: dict[str, Any]) -> dict[str, Any]:

    # 1. Caller-thread cost while the sender thread is busy sending to the real broker.
    client = Client("bench", settings=s, queue_size=max(events, 10_000))
    try:
        wait_for(lambda: client.stats["connected"], bool, 30, f"the broker {s.kafka_bootstrap}", interval=0.05)
    except AssertionError:
        raise SystemExit(f"broker {s.kafka_bootstrap} unreachable: start one (errstream local up)") from None
    _capture_loop(client, 2_000, None)  # warm-up: caches, first batches
    client.flush(30)
    for label, r in (("paced", rate), ("burst", None)):
        costs = _capture_loop(client, events, r)
        results[f"capture_{label}"] = percentiles(costs)
        out(f"capture_exception caller cost, {label} ({f'{r:,.0f}/s' if r else 'as fast as possible'}, "
            f"{events:,} events, broker up): " + ", ".join(f"{k}={v:.1f}" for k, v in results[f'capture_{label}'].items()))
        client.flush(60)

    # 2. Send throughput: a burst queued at once, timed until the broker acknowledged all of it.
    sent_before = client.stats["sent"]
    t0 = time.perf_counter()
    _capture_loop(client, events, None)
    queued_s = time.perf_counter() - t0
    ok = client.flush(120)
    elapsed = time.perf_counter() - t0
    sent = client.stats["sent"] - sent_before
    results["send"] = {"events": sent, "seconds": elapsed, "events_per_s": sent / elapsed, "flushed": ok,
                       "queue_seconds": queued_s}
    out(f"SDK send throughput: {sent:,} events acknowledged in {elapsed:.2f} s = {sent / elapsed:,.0f} events/s "
        f"(lz4, acks=all, idempotent; app thread done after {queued_s:.2f} s)")
    results["stats"] = client.stats
    client.close()

    # 3. The same caller cost with the broker unreachable (queue full, dropping the oldest).
    down = Client("bench", settings=s.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"}),
                  queue_size=1_000)
    costs = _capture_loop(down, events, None)
    results["capture_broker_down"] = percentiles(costs)
    out("capture_exception caller cost, broker down: "
        + ", ".join(f"{k}={v:.1f}" for k, v in results["capture_broker_down"].items())
        + f"; dropped={down.stats['dropped']:,}")
    down.close(0.5)
    return results


# --- gateway ---------------------------------------------------------------------------------------
def sentry_envelope() -> bytes:
    """An envelope exactly as the real sentry-sdk builds it for one exception (falls back to a hand-made one)."""
    try:
        import sentry_sdk
        from sentry_sdk.transport import Transport
    except ImportError:
        return _handmade_envelope()
    captured: list[bytes] = []

    class Capture(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            captured.append(envelope.serialize())

    client = sentry_sdk.Client(dsn="http://benchkey@127.0.0.1:1/1", transport=Capture, release="shop@2.0.1",
                               environment="bench", default_integrations=False)
    # A fork of the current scope bound to this client: the public API of sentry-sdk 2.x and 3.x alike
    # (3.0 dropped event_from_exception's client_options), and no global client is installed.
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        scope.set_tag("region", "eu-west-1")
        scope.set_user({"id": "u-42", "email": "ada@example.com"})
        try:
            handle_request(1)
        except OrderRejected:
            scope.capture_exception()
    client.flush(1)
    return captured[0] if captured else _handmade_envelope()


def _handmade_envelope() -> bytes:
    event = {"event_id": uuid.uuid4().hex, "level": "error", "platform": "python",
             "exception": {"values": [{"type": "OrderRejected", "value": "order 1 wants 3, 1 in stock",
                                       "stacktrace": {"frames": [{"module": "shop", "function": f"f{i}",
                                                                  "lineno": i, "in_app": True} for i in range(8)]}}]}}
    return b"\n".join([b"{}", b'{"type":"event"}', json.dumps(event).encode()]) + b"\n"


def otlp_traces() -> bytes:
    """An OTLP/HTTP trace export of one span with the same exception recorded, as the OpenTelemetry SDK encodes it.

    The same failing call stack as the Sentry envelope, so both modes compare one event of the same size; the
    source root is the working directory, as for the Sentry SDK, so both events have the same in-app frames.
    """
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop", "service.version": "shop@2.0.1",
                                                        "deployment.environment.name": "bench",
                                                        "errstream.project_root": os.getcwd()}))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with provider.get_tracer("bench").start_as_current_span("POST /checkout") as span:
        span.set_attribute("region", "eu-west-1")
        span.set_attribute("enduser.id", "u-42")
        try:
            handle_request(1)
        except OrderRejected as exc:
            span.record_exception(exc)
    return bytes(encode_spans(spans.get_finished_spans()).SerializeToString())


def otlp_traces_json() -> bytes:
    """The same export in OTLP/JSON, as the JavaScript exporters send it (camelCase, hex ids, int64 as strings)."""
    import base64

    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    doc = json_format.MessageToDict(ExportTraceServiceRequest.FromString(otlp_traces()))
    for resource_spans in doc["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


# Each mode: the request body builder, path, content type and auth header, and what the output calls it.
MODES: dict[str, tuple[Callable[[], bytes], str, str, tuple[str, str], str]] = {
    "sentry": (lambda: sentry_envelope(), "/api/1/envelope/", "application/x-sentry-envelope",
               ("X-Sentry-Auth", "Sentry sentry_key=benchkey, sentry_version=7"), "real sentry-sdk envelopes"),
    "otlp": (otlp_traces, "/v1/traces", "application/x-protobuf", ("Authorization", "Bearer benchkey"),
             "OTLP/HTTP protobuf trace exports from the OpenTelemetry SDK"),
    "otlp-json": (otlp_traces_json, "/v1/traces", "application/json", ("Authorization", "Bearer benchkey"),
                  "OTLP/HTTP JSON trace exports (the same spans)"),
}

_WRK_SCRIPT = """
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
wrk.method = "POST"
wrk.headers["Content-Encoding"] = "gzip"
wrk.headers["Content-Type"] = "{content_type}"
wrk.headers["{auth_name}"] = "{auth_value}"
"""


def _accepted(base: str) -> float:
    """Events accepted so far, over every endpoint (envelope, OTLP, ...)."""
    text = httpx.get(f"{base}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("errstream_gateway_events_accepted_total"))


async def _drive_httpx(url: str, body: bytes, headers: dict[str, str], seconds: float, concurrency: int) -> int:
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as http:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                r = await http.post(url, content=body, headers=headers)
                done += r.status_code == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


def bench_gateway(settings: Settings, seconds: float = 15.0, connections: int = 64, driver: str = "auto",
                  runs: int = 3, warmup: float = 3.0, out: Callable[[str], None] = print,
                  mode: str = "sentry") -> dict[str, Any]:
    """Events/s one gateway process accepts (each acknowledged by Kafka), as the median of ``runs`` passes.

    ``mode``: ``sentry`` posts real sentry-sdk envelopes, ``otlp`` OTLP/HTTP trace exports of the same
    exception; each request carries one event, so the two figures compare per event.

    A ``warmup`` of the same load comes first and is not counted: the first
    seconds of a fresh process and topic (imports, allocator, partition leaders)
    are not its steady state.
    """
    run = harness.new_run("gateway")
    s = harness.fresh_settings(settings, run)
    harness.create_topics(s, [s.topic_errors])
    port = free_port()
    projects = {"ERRSTREAM_GATEWAY_PROJECTS": json.dumps({"1": {"public_key": "benchkey", "service": "shop"}})}
    base = f"http://127.0.0.1:{port}"
    with harness.spawn("gateway", s, harness.run_dir(settings, run), args=["--port", str(port)],
                       extra_env=projects, stop_timeout=15) as (proc,):
        harness.wait_until(lambda: _up(base), bool, 30, "the gateway to start", [proc])
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode!r}: {', '.join(MODES)}")
        build, path, content_type, (auth_name, auth_value), what = MODES[mode]
        raw = build()
        body = gzip.compress(raw)
        url = f"{base}{path}"
        headers = {"Content-Encoding": "gzip", "Content-Type": content_type, auth_name: auth_value}
        check = httpx.post(url, content=body, headers=headers)
        if check.status_code != 200:
            raise SystemExit(f"gateway refused the {mode} request: {check.status_code} {check.text}")
        use_wrk = bool(driver == "wrk" or (driver == "auto" and shutil.which("wrk")))
        load = _GatewayLoad(url, body, headers, connections, use_wrk, harness.run_dir(settings, run))
        if warmup > 0:
            load.run(warmup)
        passes = [_measure_pass(load, proc.pid, base, seconds) for _ in range(max(1, runs))]
        out(f"gateway: {what} (1 event each, {len(raw):,} B raw, {len(body):,} B gzip), "
            f"1 uvicorn worker, {connections} connections, driver {'wrk' if use_wrk else 'httpx'}, "
            f"{warmup:g} s warm-up, {len(passes)} passes of {seconds:g} s; every event acknowledged by Kafka")
        for i, p in enumerate(passes, 1):
            out(f"  pass {i}: {p['events_per_s']:,.0f} events/s; gateway CPU {p['cpu_us_per_event']:.0f} µs per event "
                f"-> {1e6 / p['cpu_us_per_event']:,.0f} events/s if it had a core to itself")
        rate = statistics.median(p["events_per_s"] for p in passes)
        cpu_us = statistics.median(p["cpu_us_per_event"] for p in passes)
        out(f"gateway: median {rate:,.0f} events/s, {cpu_us:.0f} µs of gateway CPU per event (load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, shared by the load generator, Kafka and the gateway)")
        result = {"events_per_s": rate, "cpu_us_per_event": cpu_us, "passes": passes, "envelope_bytes": len(raw),
                  "driver": "wrk" if use_wrk else "httpx", "mode": mode}
    harness.delete_run_topics(s, run)
    return result


class _GatewayLoad:
    """One way of driving the gateway: wrk when installed (it costs the machine least), else httpx."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str], connections: int, use_wrk: bool,
                 tmp: Path) -> None:
        self.url, self.body, self.headers, self.connections, self.use_wrk = url, body, headers, connections, use_wrk
        self.script = tmp / "envelope.lua"
        if use_wrk:
            body_path = tmp / "body.gz"
            body_path.write_bytes(body)
            self.script.write_text(_WRK_SCRIPT.format(body=body_path, content_type=headers["Content-Type"],
                                                      **_auth_header(headers)))

    def run(self, seconds: float) -> None:
        if self.use_wrk:
            subprocess.run(["wrk", "-t1", f"-c{self.connections}", f"-d{max(1, round(seconds))}s", "-s",
                            str(self.script), self.url], capture_output=True, text=True, check=True)
        else:
            asyncio.run(_drive_httpx(self.url, self.body, self.headers, seconds, self.connections))


def _auth_header(headers: dict[str, str]) -> dict[str, str]:
    name = next(k for k in headers if k in ("X-Sentry-Auth", "Authorization"))
    return {"auth_name": name, "auth_value": headers[name]}


def _measure_pass(load: _GatewayLoad, pid: int, base: str, seconds: float) -> dict[str, float]:
    before, cpu_before, t0 = _accepted(base), cpu_seconds(pid), time.perf_counter()
    load.run(seconds)
    elapsed = time.perf_counter() - t0
    accepted, cpu = _accepted(base) - before, cpu_seconds(pid) - cpu_before
    return {"events": accepted, "seconds": elapsed, "events_per_s": accepted / elapsed,
            "cpu_us_per_event": cpu / accepted * 1e6 if accepted else float("nan")}


def _up(base: str) -> bool:
    try:
        return bool(httpx.get(f"{base}/healthz", timeout=1).json().get("kafka"))
    except httpx.HTTPError:
        return False


# --- the gateway's request path, in one process --------------------------------------------------
def bench_gateway_cpu(settings: Settings, requests: int = 3_000, rounds: int = 6, concurrency: int = 64,
                      out: Callable[[str], None] = print, kafka: bool = True) -> dict[str, Any]:
    """CPU per event of the gateway's request path for each mode, in one process, the modes interleaved.

    ``bench gateway`` needs a load generator on the same machine, and on a shared 2-core machine its
    events/s and even its CPU per event move by more than the difference between the modes. Here the
    gateway's ASGI application is called directly (no sockets, no HTTP parsing: the same for every mode)
    with the real request bodies, its real Kafka publisher and acknowledgements; ``time.process_time`` of this
    process, which runs nothing else, is divided by the events accepted. Rounds alternate the modes (and
    which goes first), so a change in the machine's load touches both alike; the median round is reported.

    ``kafka=False`` stops each request at the publisher's door (``_Discard``: events scrubbed, encoded and
    size-checked, then dropped), which leaves out the broker's share — the same for every mode, and most of
    the variance on a loaded machine — and needs no broker.
    """
    if not kafka:
        return asyncio.run(_gateway_cpu(settings, requests, rounds, concurrency, out, _Discard()))
    run = harness.new_run("gateway-cpu")
    s = harness.fresh_settings(settings, run)
    harness.create_topics(s, [s.topic_errors])
    try:
        return asyncio.run(_gateway_cpu(s, requests, rounds, concurrency, out, None))
    finally:
        harness.delete_run_topics(s, run)


class _Discard:
    """Stands where the Kafka publisher does in ``bench gateway-cpu --no-kafka``: takes each record, sends nothing."""

    async def publish_coalesced(self, payload: bytes, key: bytes | None = None) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


async def _gateway_cpu(s: Settings, requests: int, rounds: int, concurrency: int, out: Callable[[str], None],
                       publisher: _Discard | None) -> dict[str, Any]:
    from errstream_core.settings import GatewayProject
    from producers.gateway.app import create_app

    app = create_app(s.model_copy(update={"gateway_projects": {"1": GatewayProject(public_key="benchkey",
                                                                                    service="shop")}}))
    gateway = app.gateway
    if publisher is None:
        await gateway.connect()
    else:
        gateway.publisher = publisher  # type: ignore[assignment]
    bodies = {}
    for mode, (build, path, content_type, (auth_name, auth_value), _) in MODES.items():
        raw = build()
        headers = [(b"content-type", content_type.encode()), (b"content-encoding", b"gzip"),
                   (auth_name.lower().encode(), auth_value.encode())]
        bodies[mode] = (path, headers, gzip.compress(raw), len(raw))

    async def post(mode: str) -> int:
        path, headers, body, _ = bodies[mode]
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        scope = {"type": "http", "method": "POST", "path": path, "headers": headers + [
            (b"content-length", b"%d" % len(body))], "query_string": b"", "client": ("127.0.0.1", 50000)}
        await app(scope, receive, send)
        return status

    async def batch(mode: str, n: int) -> None:
        for start in range(0, n, concurrency):
            statuses = await asyncio.gather(*(post(mode) for _ in range(min(concurrency, n - start))))
            if any(code != 200 for code in statuses):
                raise SystemExit(f"the gateway refused {mode} requests: {sorted(set(statuses))}")

    per_event: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for mode in MODES:  # warm-up: imports, caches, the partition leaders
            await batch(mode, min(requests, 500))
        for i in range(rounds):
            order = list(MODES) if i % 2 == 0 else list(reversed(MODES))
            for mode in order:
                started = time.process_time()
                await batch(mode, requests)
                per_event[mode].append((time.process_time() - started) / requests * 1e6)
    finally:
        if gateway.publisher is not None:
            await gateway.publisher.__aexit__(None, None, None)
    where = "real Kafka publisher" if publisher is None else "events dropped at the publisher, no Kafka"
    out(f"gateway request path in one process (ASGI app called directly, {where}), {requests:,} "
        f"requests of 1 event per mode and round, {concurrency} at a time, {rounds} rounds, modes interleaved")
    figures: dict[str, Any] = {"requests": requests, "rounds": rounds, "concurrency": concurrency,
                               "kafka": publisher is None}
    for mode, values in per_event.items():
        median = statistics.median(values)
        figures[mode] = {"cpu_us_per_event": median, "rounds_us": values, "events_per_cpu_second": 1e6 / median,
                         "body_bytes": len(bodies[mode][2]), "raw_bytes": bodies[mode][3]}
        out(f"  {mode:<9} {median:6.1f} µs of CPU per event (median; rounds "
            f"{', '.join(f'{v:.1f}' for v in values)}) -> {1e6 / median:,.0f} events per CPU-second")
    if {"otlp", "sentry"} <= per_event.keys():
        # each round's two modes ran back to back, under much the same load: their ratio moves less than either
        ratios = [o / s for o, s in zip(per_event["otlp"], per_event["sentry"], strict=True)]
        figures["otlp_to_sentry"] = statistics.median(ratios)
        figures["otlp_to_sentry_rounds"] = ratios
        out(f"  otlp / sentry CPU per event: {figures['otlp_to_sentry']:.2f} (median of the rounds' ratios "
            f"{', '.join(f'{r:.2f}' for r in ratios)}; load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores)")
    return figures
