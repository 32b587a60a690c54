"""The same bug reported by an OpenTelemetry-only service and by the unmodified sentry-sdk.

Run in its own process (``python -c "from tests.support.apps.otel_shop import main; main()" ...``: imported,
not run as ``__main__``, so the Sentry SDK names its module as the path does), from the repository root (the Sentry
SDK's ``project_root`` and the ``errstream.project_root`` resource attribute are both the working directory):

* ``record``: prints JSON lines ``{"kind": ..., "body": <base64>}`` with the OTLP protobuf bodies the real
  OpenTelemetry SDK's encoders build (``traces``, ``logs``) and the Sentry event payloads (``sentry``), for
  unit tests that need no server;
* ``send <gateway url> <key> <project id>``: exports through the real OTLP/HTTP exporters (gzip) and sends
  the Sentry events through the real SDK's HTTP transport, to a running gateway; prints the OTel trace id.

``pay`` raises ``RuntimeError`` from ``OrderRejected``: a two-exception chain with in-app frames
(``tests.support.apps.sentry_payloads``), so grouping compares chains and frames, not just a type.
"""

from __future__ import annotations

import base64
import logging
import os
import sys
from typing import Any

import orjson
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from tests.support.apps.sentry_payloads import OrderRejected, pay

ORDER = {"id": 1, "qty": 3, "stock": 1}


def attempt(report: Any) -> None:
    """Both reporters catch the error here, so both stacks have the same frames."""
    try:
        pay(ORDER)
    except (OrderRejected, RuntimeError) as exc:
        report(exc)


def resource(service: str) -> Resource:
    return Resource.create({"service.name": service, "service.version": "shop@2.0.1",
                            "deployment.environment.name": "test", "errstream.project_root": os.getcwd()})


def otel_errors(tracer_provider: TracerProvider, logger_provider: LoggerProvider) -> str:
    """One failing span with the exception recorded, one ``log.exception`` and one ``log.error``; the trace id."""
    tracer = tracer_provider.get_tracer("shop.checkout")
    log = logging.getLogger("shop.payments")
    log.propagate = False
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
    with tracer.start_as_current_span("GET /cart") as parent, tracer.start_as_current_span("pay") as span:
        def report(exc: BaseException) -> None:
            span.record_exception(exc, attributes={"order.id": 1, "http.request.header.authorization": "Bearer x"})
            span.set_status(Status(StatusCode.ERROR))
            log.exception("payment failed for ada@example.com")

        attempt(report)
        log.error("card declined for order %s", 1)
        log.info("not an error")
        trace_id = f"{parent.get_span_context().trace_id:032x}"
    with tracer.start_as_current_span("failing without exception") as bare:
        bare.set_status(Status(StatusCode.ERROR))
    return trace_id


def sentry_errors(transport: Any = None, dsn: str = "http://k@127.0.0.1:1/1") -> None:
    import sentry_sdk

    sentry_sdk.init(dsn=dsn, release="shop@2.0.1", environment="test", default_integrations=False,
                    **({"transport": transport} if transport else {}))
    attempt(sentry_sdk.capture_exception)
    sentry_sdk.flush(10)


def record() -> None:
    from sentry_sdk.envelope import Envelope
    from sentry_sdk.transport import Transport

    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider = TracerProvider(resource=resource("shop"))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider(resource=resource("shop"))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    otel_errors(tracer_provider, logger_provider)
    out = sys.stdout.buffer

    def line(kind: str, body: bytes) -> None:
        out.write(orjson.dumps({"kind": kind, "body": base64.b64encode(body).decode()}) + b"\n")

    line("traces", encode_spans(spans.get_finished_spans()).SerializeToString())
    line("logs", encode_logs(logs.get_finished_logs()).SerializeToString())

    class Capture(Transport):
        def capture_envelope(self, envelope: Envelope) -> None:
            for item in envelope.items:
                if item.type == "event":
                    line("sentry", item.payload.get_bytes())

    sentry_errors(Capture)


def send(url: str, key: str, project: str) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    headers = {"Authorization": f"Bearer {key}"}
    tracer_provider = TracerProvider(resource=resource("shop"))
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces", headers=headers, compression=Compression.Gzip)))
    logger_provider = LoggerProvider(resource=resource("shop"))
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(
        endpoint=f"{url}/v1/logs", headers={"X-Errstream-Key": key}, compression=Compression.Gzip)))
    trace_id = otel_errors(tracer_provider, logger_provider)
    assert tracer_provider.force_flush(30_000) and logger_provider.force_flush(30_000), "export did not finish"
    tracer_provider.shutdown()
    logger_provider.shutdown()
    sentry_errors(dsn=url.replace("://", f"://{key}@") + f"/{project}")
    print(trace_id, flush=True)


def main() -> None:
    if sys.argv[1] == "record":
        record()
    else:
        send(*sys.argv[2:5])
