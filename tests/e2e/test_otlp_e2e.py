"""OpenTelemetry in, end to end: the real OTLP/HTTP exporters → gateway → Kafka → worker → sink → ClickHouse.

An app instrumented only with OpenTelemetry (``tests/support/apps/otel_shop.py``: a span with the exception
recorded, ``log.exception`` and ``log.error`` through the OTel logging handler, gzip, the key as a bearer
token) shows its exceptions with stack frames, in the same issue as the same bug sent by the unmodified
sentry-sdk; and an errstream SDK error in the same trace forms a chain with the OTel service.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from errstream_core.settings import GatewayProject, Settings
from producers.sdk import Client as SdkClient
from tests.e2e.test_ingest_e2e import stored_events
from tests.support.detection import of_kind, wait_alerts
from tests.support.gateway import running_gateway
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gateway(settings: Settings) -> Iterator[str]:
    settings.gateway_projects = {"42": GatewayProject(public_key="shopkey42", service="shop")}
    with running_gateway(settings) as url:
        yield url


def test_otel_exceptions_become_issues_grouped_with_the_sentry_sdk_and_chained_by_trace(
    settings: Settings, ch: Client, services: dict[str, Service], gateway: str
) -> None:
    run = subprocess.run([sys.executable, "-c", "from tests.support.apps.otel_shop import main; main()",
                          "send", gateway, "shopkey42", "42"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    otel_trace = run.stdout.split()[-1]

    # the errstream SDK, called inside a span of the same trace (as a downstream service would be)
    sdk = SdkClient("payments", environment="test", settings=settings)
    remote = SpanContext(int(otel_trace, 16), 0x1234, is_remote=True, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(remote)):
        try:
            raise TimeoutError("card network did not answer")
        except TimeoutError as exc:
            sdk.capture_exception(exc)
    sdk.flush(10)
    sdk.close()

    rows = wait_for(lambda: stored_events(ch, settings), lambda r: len(r) >= 5, 90, "5 events in error_events",
                    diagnostics=lambda: services["worker"].output()[-2000:] + services["sink"].output()[-2000:])
    otel = [r for r in rows if r["trace_id"] == otel_trace and r["service"] == "shop"]
    sentry = [r for r in rows if r["service"] == "shop" and r["trace_id"] != otel_trace]
    assert len(otel) == 3 and len(sentry) == 1, rows
    span_event, log_exception = sorted((r for r in otel if r["exception_type"]), key=lambda r: r["logger"] or "")
    message = next(r for r in otel if not r["exception_type"])

    # one issue: the OTel span event, the OTel log record and the Sentry SDK's event
    assert span_event["fingerprint"] == log_exception["fingerprint"] == sentry[0]["fingerprint"]
    assert span_event["title"] == sentry[0]["title"] == "OrderRejected: order 1 wants 3, 1 in stock"
    assert span_event["in_app_frames"] == sentry[0]["in_app_frames"]
    chain = orjson.loads(span_event["exceptions"])
    assert [e["type"] for e in chain] == ["OrderRejected", "RuntimeError"]
    raising = chain[0]["stacktrace"][-1]
    assert (raising["module"], raising["function"], raising["in_app"]) == (
        "tests.support.apps.sentry_payloads", "checkout", True)
    assert "raise OrderRejected" in raising["context_line"]
    assert (span_event["release"], span_event["environment"]) == ("shop@2.0.1", "test")
    assert span_event["tags"]["otel.span_name"] == "pay" and span_event["tags"]["order.id"] == "1"
    assert span_event["tags"]["http.request.header.authorization"] == "[Filtered]"  # scrubbed before Kafka
    assert log_exception["message"] == "payment failed for <email>" and log_exception["logger"] == "shop.payments"
    assert message["message"] == "card declined for order 1" and message["level"] == "error"

    got = wait_alerts(settings, lambda a: any(x["details"].get("trace_id") == otel_trace
                                              for x in of_kind(a, "error_chain")),
                      what="the error_chain alert over the OTel service and the SDK service",
                      diagnostics=lambda: services["worker"].output()[-3000:])
    [chained] = [x for x in of_kind(got, "error_chain") if x["details"]["trace_id"] == otel_trace]
    assert sorted(chained["details"]["services"]) == ["payments", "shop"]
