"""OTLP/HTTP in: real OpenTelemetry SDK payloads map to the events the Sentry path gives; hostile bodies are 4xx.

The payloads are built by the real OpenTelemetry SDK and its OTLP encoders, and the Sentry events by the
unmodified sentry-sdk, for the same raised bug (``tests/support/apps/otel_shop.py``, in another process).
The HTTP tests run the real gateway (uvicorn) with no broker: every refusal here happens before publishing.
"""

from __future__ import annotations

import base64
import functools
import gzip
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from prometheus_client.parser import text_string_to_metric_families

from errstream_core.scrub import Scrubber
from errstream_core.settings import GatewayProject, Settings
from producers.gateway.errors import Rejected
from producers.gateway.otlp_mapping import Mapped, map_logs, map_traces
from producers.gateway.otlp_wire import MAX_RECORDS, decode_logs, decode_traces
from producers.gateway.projects import Project, Projects
from producers.gateway.sentry_typed import convert_sentry_payload
from producers.gateway.stacktrace_text import MAX_TEXT
from schemas import events as models
from schemas.fast import ErrorEvent, encode
from schemas.limits import MAX_MESSAGE, MAX_SHORT, MAX_TAGS
from stream_processors.fingerprint import group_event
from tests.support.gateway import running_gateway

ROOT = Path(__file__).resolve().parents[2]
PROTOBUF = {"Content-Type": "application/x-protobuf", "Authorization": "Bearer shopkey"}
JSON = {"Content-Type": "application/json", "X-Errstream-Key": "shopkey"}


@functools.cache
def recorded() -> dict[str, list[bytes]]:
    out = subprocess.run([sys.executable, "-c", "from tests.support.apps.otel_shop import main; main()", "record"],
                         capture_output=True, check=True, timeout=120, cwd=ROOT).stdout
    bodies: dict[str, list[bytes]] = {}
    for line in out.splitlines():
        doc = orjson.loads(line)
        bodies.setdefault(doc["kind"], []).append(base64.b64decode(doc["body"]))
    return bodies


def project(**kw: Any) -> Project:
    return Projects({"1": GatewayProject(public_key="shopkey", service="shop", **kw)}).by_id["1"]


def traces() -> Mapped:
    return map_traces(decode_traces(recorded()["traces"][0], "application/x-protobuf")[0], project())


def logs() -> Mapped:
    return map_logs(decode_logs(recorded()["logs"][0], "application/x-protobuf")[0], project())


def sentry() -> ErrorEvent:
    [payload] = recorded()["sentry"]
    return convert_sentry_payload(payload, service="shop")


def test_the_same_bug_through_otel_spans_logs_and_sentry_sdk_is_one_issue() -> None:
    [span_event] = traces().events
    log_exception, log_error = logs().events
    expected = group_event(sentry())
    for event in (span_event, log_exception):
        grouping = group_event(event)
        assert grouping.fingerprint == expected.fingerprint
        assert (grouping.title, grouping.culprit) == (expected.title, expected.culprit)
        # root cause first, frames outermost first, as the SDK sent them
        assert [e.type for e in event.exceptions] == ["OrderRejected", "RuntimeError"]
        frames = event.exceptions[0].stacktrace
        assert [(f.module, f.function, f.in_app) for f in frames] == [
            ("tests.support.apps.sentry_payloads", "pay", True), ("tests.support.apps.sentry_payloads", "checkout",
                                                                 True)]
        assert frames[-1].lineno and frames[-1].context_line and "raise OrderRejected" in frames[-1].context_line
        assert (event.service, event.release, event.environment, event.platform) == ("shop", "shop@2.0.1", "test",
                                                                                     "python")
    assert log_error.exceptions == [] and log_error.message == "card declined for order 1"
    assert log_error.logger == log_exception.logger == "shop.payments" and log_error.level == "error"


def test_trace_span_and_parent_ids_and_tags_come_from_the_span() -> None:
    mapped = traces()
    [event] = mapped.events
    [log_exception, _] = logs().events
    assert event.trace_id and len(event.trace_id) == 32 and event.span_id and event.parent_span_id
    assert log_exception.trace_id == event.trace_id and log_exception.span_id == event.span_id
    assert event.tags["order.id"] == "1" and event.tags["otel.span_name"] == "pay"
    # resource attributes that became fields (or in-app frames) are not repeated in the context; the others are
    assert event.context["otel_resource"]["service.instance.id"]
    assert not {"service.name", "service.version", "telemetry.sdk.language", "errstream.project_root"} & set(
        event.context["otel_resource"])
    # the span with status ERROR and no exception event is left out, and counted
    assert mapped.ignored == {"error_span_without_exception": 1, "span_without_exception": 1}
    assert mapped.stacktraces == {("python", "parsed"): 1}


def _otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """protobuf's JSON of ``request`` (int64 as strings, enums by name) with OTLP/JSON's hex ids, as the
    Collector and the JavaScript exporters send them."""
    doc = json_format.MessageToDict(request)
    for span in (span for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]):
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.b64decode(span[key]).hex()
    return doc


def test_json_encoding_gives_the_same_events_as_protobuf() -> None:
    request = ExportTraceServiceRequest.FromString(recorded()["traces"][0])
    doc = _otlp_json(request)
    from_json = map_traces(decode_traces(orjson.dumps(doc), "application/json; charset=utf-8")[0], project())
    assert from_json.events == traces().events


def _span_request(n: int = 1, *, service: str = "shop", attrs: dict[str, AnyValue] | None = None,
                  event_attrs: dict[str, AnyValue] | None = None,
                  resource: dict[str, str] | None = None) -> ExportTraceServiceRequest:
    exc = {"exception.type": AnyValue(string_value="ValueError"),
           "exception.message": AnyValue(string_value="bad"), **(event_attrs or {})}
    spans = [Span(trace_id=bytes(range(1, 17)), span_id=(i + 1).to_bytes(8, "big"), name="op",
                  attributes=[KeyValue(key=k, value=v) for k, v in (attrs or {}).items()],
                  events=[Span.Event(name="exception", time_unix_nano=1_765_000_000_000_000_000,
                                     attributes=[KeyValue(key=k, value=v) for k, v in exc.items()])])
             for i in range(n)]
    resource_attrs = [KeyValue(key=k, value=AnyValue(string_value=v))
                      for k, v in {"service.name": service, **(resource or {})}.items()]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    request.resource_spans[0].resource.attributes.extend(resource_attrs)
    return request


def test_empty_span_name_and_stack_trace_add_no_tag_and_no_count() -> None:
    request = _span_request(event_attrs={"exception.stacktrace": AnyValue(string_value="")})
    request.resource_spans[0].scope_spans[0].spans[0].name = ""
    mapped = map_traces(request, project())
    [event] = mapped.events
    assert "otel.span_name" not in event.tags and mapped.stacktraces == {}
    assert (event.exceptions[0].type, event.exceptions[0].value) == ("ValueError", "bad")


def test_resource_values_the_context_cannot_hold_are_kept_as_text() -> None:
    request = _span_request()
    resource = request.resource_spans[0].resource
    resource.attributes.add(key="big", value=AnyValue(int_value=2**63 - 1))
    resource.attributes.add(key="nan", value=AnyValue(double_value=float("nan")))
    resource.attributes.add(key="list", value=AnyValue()).value.array_value.values.add(int_value=1)
    [event] = map_traces(request, project()).events
    assert event.context == {"otel_resource": {"big": 2**63 - 1, "nan": "nan", "list": "[1]"}}


def test_huge_attribute_values_are_cut_not_refused() -> None:
    huge = AnyValue(string_value="x" * 3_000_000)
    many = {f"attr{i}": AnyValue(int_value=i) for i in range(500)}
    mapped = map_traces(_span_request(attrs={"big": huge, **many}, event_attrs={"exception.message": huge,
                                                                               "exception.stacktrace": huge}),
                        project())
    [event] = mapped.events
    assert len(event.exceptions[0].value) <= MAX_MESSAGE and len(event.tags) == MAX_TAGS
    assert len(event.tags["big"]) <= MAX_SHORT
    assert mapped.stacktraces == {("other", "unparsed"): 1}  # counted, and the event keeps type and message


def _traceback(*paths: str, frames: int = 1) -> str:
    """A printed Python traceback through ``paths`` (each ``frames`` times), as an OTel SDK records it."""
    lines = ["Traceback (most recent call last):"]
    for path in paths:
        lines += [f'  File "{path}", line 12, in handle', "    return checkout(order)"] * frames
    return "\n".join([*lines, "shop.errors.OrderRejected: order 1 wants 3", ""])


def test_project_root_resource_attribute_marks_in_app_frames_and_names_their_modules() -> None:
    """Without errstream.project_root a printed traceback has only paths; with it, frames below the root are
    in-app with dotted module names (as the Sentry Python SDK's project_root gives), library frames are not."""
    text = _traceback("/srv/shop/shop/payments.py", "/srv/shop/.venv/lib/python3.11/site-packages/httpx/_client.py",
                      "/srv/other/tool.py")
    event_attrs = {"exception.stacktrace": AnyValue(string_value=text)}
    python = {"telemetry.sdk.language": "python"}
    for root in ("/srv/shop", "/srv/shop/"):
        [event] = map_traces(_span_request(event_attrs=event_attrs,
                                           resource={**python, "errstream.project_root": root}), project()).events
        [exc] = event.exceptions
        assert [(f.module, f.in_app) for f in exc.stacktrace] == [
            ("shop.payments", True), ("httpx._client", False), (None, None)]
        assert (exc.type, exc.module) == ("OrderRejected", "shop.errors")
    [event] = map_traces(_span_request(event_attrs=event_attrs, resource=python), project()).events
    assert [(f.module, f.in_app) for f in event.exceptions[0].stacktrace] == [
        (None, None), ("httpx._client", False), (None, None)]


def test_a_stack_trace_longer_than_a_message_is_parsed_whole() -> None:
    """exception.stacktrace is read up to the parsers' 64,000 characters, not cut to a message's 8,192 (which
    lost the exception line at the end of a deep Python traceback and left the event without frames)."""
    text = _traceback("/srv/shop/shop/payments.py", frames=150)
    assert MAX_MESSAGE < len(text) < MAX_TEXT
    mapped = map_traces(_span_request(event_attrs={"exception.stacktrace": AnyValue(string_value=text)},
                                      resource={"errstream.project_root": "/srv/shop"}), project())
    [event] = mapped.events
    assert len(event.exceptions[0].stacktrace) == 150 and event.exceptions[0].type == "OrderRejected"
    assert mapped.stacktraces == {("other", "parsed"): 1}


def test_scrubbing_one_event_leaves_the_next_mapping_of_the_same_trace_as_sent() -> None:
    """Parsed traces are kept and reused; each event gets its own copy, so what the scrubber replaces in one
    (a source line with an e-mail address) is not what the next event of the same bug starts from."""
    text = ('Traceback (most recent call last):\n  File "/srv/shop/shop/mail.py", line 3, in send\n'
            '    raise ValueError("bounced: ada@example.com")\nValueError: bounced\n')
    request = _span_request(event_attrs={"exception.stacktrace": AnyValue(string_value=text)})
    scrubber = Scrubber.from_settings(Settings())
    [first] = map_traces(request, project()).events
    assert scrubber.scrub(first).exceptions[0].stacktrace[0].context_line == 'raise ValueError("bounced: <email>")'
    [again] = map_traces(_span_request(event_attrs={"exception.stacktrace": AnyValue(string_value=text)}),
                         project()).events
    assert again.exceptions[0].stacktrace[0].context_line == 'raise ValueError("bounced: ada@example.com")'


@pytest.fixture(scope="module")
def gateway() -> Iterator[httpx.Client]:
    settings = Settings(kafka_bootstrap="127.0.0.1:9", gateway_max_body_bytes=5_000_000,
                        gateway_projects={"1": GatewayProject(public_key="shopkey", service="shop"),
                                          "2": GatewayProject(public_key="fleetkey", service="x", services=["*"]),
                                          "3": GatewayProject(public_key="slowkey", service="shop", rate_limit=1,
                                                              burst=2)})
    with running_gateway(settings, wait_for_kafka=False) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http


def _deep_json(levels: int, array: bool = False) -> bytes:
    """An attribute whose AnyValue nests kvlists (or arrays) ``levels`` deep (written as text: orjson stops at 254
    levels)."""
    value = b'{"stringValue": "bottom"}'
    for _ in range(levels):
        value = (b'{"arrayValue": {"values": [' + value + b"]}}" if array
                 else b'{"kvlistValue": {"values": [{"key": "k", "value": ' + value + b"}]}}")
    span = (b'{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "op", '
            b'"attributes": [{"key": "deep", "value": ' + value + b"}]}")
    return b'{"resourceSpans": [{"scopeSpans": [{"spans": [' + span + b"]}]}]}"


def _deep_protobuf(levels: int, array: bool = False) -> bytes:
    """A resource attribute whose AnyValue nests kvlists (or arrays) ``levels`` deep, written field by field."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while n > 0x7F:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes(out) + bytes([n])

    def field(number: int, payload: bytes) -> bytes:  # a length-delimited field
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    value = field(1, b"bottom")  # AnyValue.string_value
    for _ in range(levels):  # AnyValue.kvlist_value → KeyValueList.values → KeyValue{key, value}
        value = field(5, field(1, value)) if array else field(6, field(1, field(1, b"k") + field(2, value)))
    return field(1, field(1, field(1, field(1, b"deep") + field(2, value))))  # request → resource spans → resource


def _many_spans(n: int) -> bytes:
    scope = ScopeSpans(spans=[Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8) for _ in range(n)])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[scope])]).SerializeToString()


HOSTILE = [
    ("truncated protobuf", PROTOBUF, lambda: recorded()["traces"][0][:-7], 400, "not a valid"),
    ("protobuf sent as JSON", JSON, lambda: recorded()["traces"][0], 400, "not valid JSON"),
    ("wrong content type", {**PROTOBUF, "Content-Type": "text/plain"}, lambda: b"hello", 415, "not OTLP/HTTP"),
    ("JSON that is not an object", JSON, lambda: b"[1, 2]", 400, "must be a JSON object"),
    ("ids that are not hex", JSON, lambda: orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "not-hex", "spanId": "zz"}]}]}]}), 400, "is not hex"),
    ("AnyValue nested 80 deep", JSON, lambda: _deep_json(80), 400, "not a valid"),
    ("protobuf AnyValue nested 500 deep", PROTOBUF, lambda: _deep_protobuf(500), 400, "not a valid"),
    ("AnyValue nested 5,000 deep", JSON, lambda: _deep_json(5_000), 400, "not valid JSON"),
    ("AnyValue arrays nested 80 deep", JSON, lambda: _deep_json(80, array=True), 400, "not a valid"),
    ("protobuf AnyValue arrays nested 500 deep", PROTOBUF, lambda: _deep_protobuf(500, array=True), 400,
     "not a valid"),
    ("a body over the size limit (a huge attribute value)", PROTOBUF,
     lambda: _span_request(attrs={"big": AnyValue(string_value="x" * 6_000_000)}).SerializeToString(), 413,
     "exceeds the limit"),
    ("JSON nested 100,000 deep", JSON, lambda: b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 400, "not valid JSON"),
    ("100,000 spans", PROTOBUF, lambda: _many_spans(100_000), 413, "exceed the limit"),
    ("100,000 spans as JSON", JSON, lambda: b'{"resourceSpans": [{"scopeSpans": [{"spans": [' + b", ".join(
        [b'{"name": "op"}'] * 100_000) + b"]}]}]}", 413, "exceed the limit"),
    ("no key", {"Content-Type": "application/x-protobuf"}, lambda: b"", 401, "missing public key"),
    ("unknown key", {**PROTOBUF, "Authorization": "Bearer nope"}, lambda: b"", 403, "unknown public key"),
    ("a service the key is not bound to", PROTOBUF, lambda: _span_request(service="billing").SerializeToString(),
     403, "may not send events for service 'billing'"),
    ("bad gzip", {**PROTOBUF, "Content-Encoding": "gzip"}, lambda: b"\x1f\x8b not gzip", 400, "not valid gzip"),
]


@pytest.mark.parametrize(("what", "headers", "body", "status", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_get_a_4xx_with_a_reason(gateway: httpx.Client, what: str, headers: dict[str, str],
                                                body: Any, status: int, reason: str) -> None:
    r = gateway.post("/v1/traces", content=body(), headers=headers)
    assert r.status_code == status, r.text
    assert reason in _detail(r)
    assert gateway.get("/healthz").status_code == 200  # nothing stops


def _detail(r: httpx.Response) -> str:
    """The reason, from the google.rpc.Status an OTLP refusal carries in the request's encoding."""
    if r.headers["content-type"] == "application/x-protobuf":
        status = Status.FromString(r.content)
    else:
        status = json_format.ParseDict(r.json(), Status(), ignore_unknown_fields=True)
        assert r.json()["detail"] == status.message  # the field the gateway's other endpoints answer with
    assert status.code in (3, 7, 8, 16)  # INVALID_ARGUMENT, PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNAUTHENTICATED
    return str(status.message)


def test_100000_spans_is_refused_before_mapping() -> None:
    with pytest.raises(Exception, match=f"100000 spans in one request exceed the limit of {MAX_RECORDS}"):
        decode_traces(_many_spans(100_000), "application/x-protobuf")


def test_refused_records_are_reported_as_otlp_partial_success(gateway: httpx.Client) -> None:
    """The fleet key may send for any service, but a service name the schema refuses fails that record only."""
    body = _span_request(2, service="not a valid name!").SerializeToString()
    r = gateway.post("/v1/traces", content=gzip.compress(body),
                     headers={**PROTOBUF, "Authorization": "Bearer fleetkey", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    partial = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == 2 and "service" in partial.error_message
    r = gateway.post("/v1/logs", content=b"{}", headers={**JSON, "X-Errstream-Key": "fleetkey"})
    assert r.status_code == 200 and r.json() == {}  # nothing in it: an empty response, no partial success
    assert ExportLogsServiceResponse() == json_format.ParseDict(r.json(), ExportLogsServiceResponse())
    families = {f.name: f for f in text_string_to_metric_families(gateway.get("/metrics").text)}
    [sample] = [s for s in families["errstream_gateway_otlp_records_rejected"].samples if s.name.endswith("_total")]
    assert sample.labels == {"signal": "traces"} and sample.value >= 2


def test_events_reach_publishing_and_wait_for_the_broker(gateway: httpx.Client) -> None:
    """A valid export gets past every check; with no broker it is a 503 the exporter retries, never a 500.
    Huge attribute values within the body limit (4 MB here, nested arrays and kvlists too) are cut, not refused."""
    r = gateway.post("/v1/traces", content=recorded()["traces"][0], headers=PROTOBUF)
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    huge = AnyValue(string_value="x" * 4_000_000)
    nested = AnyValue()
    nested.array_value.values.add().kvlist_value.values.add(key="k", value=AnyValue(string_value="y" * 100_000))
    body = _span_request(attrs={"big": huge, "nested": nested}, event_attrs={"exception.message": huge}).SerializeToString()
    r = gateway.post("/v1/traces", content=gzip.compress(body), headers={**PROTOBUF, "Content-Encoding": "gzip"})
    assert r.status_code == 503 and Status.FromString(r.content).code == 14  # UNAVAILABLE: the exporter retries


def test_mutated_sdk_payloads_are_refused_with_a_reason_or_give_publishable_events() -> None:
    """Thousands of byte-level mutations of the SDK's own bodies: never an unexpected error (a 500)."""
    rng = random.Random(25)
    scrubber = Scrubber.from_settings(Settings())
    fleet = project(services=["*"])
    outcomes: Counter[str] = Counter()
    for signal, decode, mapping in (("traces", decode_traces, map_traces), ("logs", decode_logs, map_logs)):
        body = recorded()[signal][0]
        for _ in range(1_500):
            mutated = bytearray(body)
            for _ in range(rng.randint(1, 6)):
                pos = rng.randrange(len(mutated))
                if rng.random() < 0.7:
                    mutated[pos] = rng.randrange(256)
                else:
                    del mutated[pos:pos + rng.randint(1, 20)]
            try:
                mapped = mapping(decode(bytes(mutated), "application/x-protobuf")[0], fleet)  # type: ignore[operator]
            except Rejected as r:
                assert 400 <= r.status < 500 and r.detail
                outcomes["refused"] += 1
                continue
            for event in mapped.events:  # what would be published satisfies the contract (pydantic's model)
                models.ErrorEvent.model_validate_json(encode(scrubber.scrub(event)))
            outcomes["accepted"] += 1
    assert outcomes["refused"] > 100 and outcomes["accepted"] > 100  # both paths were exercised


NODE_RECORDED = sorted((ROOT / "tests" / "data" / "otlp").glob("node-*.jsonl"))  # scripts/record_otlp_node_payloads.py


@pytest.mark.parametrize("path", NODE_RECORDED, ids=[p.stem for p in NODE_RECORDED])
def test_node_sdk_json_exports_map_to_grouped_events_with_frames(path: Path) -> None:
    """What the real Node.js SDK sent (OTLP/JSON: hex ids, int64 as strings), recorded without the test needing Node."""
    requests = {doc["path"]: doc for doc in map(orjson.loads, path.read_bytes().splitlines())}
    node = project(services=["shop-node"])
    traces_doc, logs_doc = requests["/v1/traces"], requests["/v1/logs"]
    assert traces_doc["content_type"].startswith("application/json")
    [span_event] = map_traces(decode_traces(base64.b64decode(traces_doc["body"]), traces_doc["content_type"])[0],
                              node).events
    [log_event] = map_logs(decode_logs(base64.b64decode(logs_doc["body"]), logs_doc["content_type"])[0], node).events
    for event in (span_event, log_event):
        assert (event.service, event.release, event.environment, event.platform) == ("shop-node", "shop@2.0.1",
                                                                                     "test", "node")
        [exc] = event.exceptions
        assert (exc.type, exc.value) == ("TypeError", "order 1 wants 3, 1 in stock")
        in_app = [(f.function, f.filename, f.lineno) for f in exc.stacktrace if f.in_app]
        assert [f for f, _, _ in in_app][-2:] == ["pay", "checkout"]  # outermost first: the thrower last
        assert all(name == "/app/app.js" for _, name, _ in in_app)
        assert not any(f.in_app for f in exc.stacktrace if "node_modules" in (f.filename or ""))
    assert log_event.trace_id == span_event.trace_id and log_event.span_id == span_event.span_id
    assert span_event.parent_span_id and len(span_event.trace_id or "") == 32
    assert group_event(span_event).fingerprint == group_event(log_event).fingerprint
    assert log_event.message == "payment failed" and log_event.logger == "shop.payments"


def _reference(body: bytes, message: Any) -> Any:
    """What protobuf's own JSON parser makes of an OTLP/JSON body (its ids turned from hex into base64 first)."""
    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: base64.b64encode(bytes.fromhex(v)).decode() if k in ("traceId", "spanId", "parentSpanId")
                    else fix(v) for k, v in node.items()}
        return [fix(v) for v in node] if isinstance(node, list) else node

    return json_format.ParseDict(fix(orjson.loads(body)), message, ignore_unknown_fields=True)


def test_otlp_json_decodes_to_what_protobufs_own_json_parser_gives() -> None:
    """The gateway's JSON decoder (a walk over the object and the C constructor, for speed) gives the very
    message protobuf's json_format gives, on the real Node.js SDK's exports and on the Python SDK's."""
    for path in NODE_RECORDED:
        for doc in map(orjson.loads, path.read_bytes().splitlines()):
            body = base64.b64decode(doc["body"])
            if doc["path"] == "/v1/traces":
                assert decode_traces(body, doc["content_type"])[0] == _reference(body, ExportTraceServiceRequest())
            else:
                assert decode_logs(body, doc["content_type"])[0] == _reference(body, ExportLogsServiceRequest())
    request = ExportTraceServiceRequest.FromString(recorded()["traces"][0])
    doc = _otlp_json(request)
    assert decode_traces(orjson.dumps(doc), "application/json")[0] == request
    snake = {"resource_spans": [{"scope_spans": [{"spans": [{"trace_id": "01" * 16, "kind": "SPAN_KIND_SERVER",
                                                            "status": {"code": 2}, "start_time_unix_nano": 5,
                                                            "future_field": {"x": 1}}]}]}]}
    [[[span]]] = [[ss.spans for ss in rs.scope_spans] for rs in decode_traces(orjson.dumps(snake),
                                                                                "application/json")[0].resource_spans]
    assert (span.trace_id, span.kind, span.status.code, span.start_time_unix_nano) == (b"\x01" * 16, 2, 2, 5)


@pytest.mark.parametrize(("doc", "reason"), [
    ({"resourceSpans": {"scopeSpans": []}}, "resourceSpans must be a JSON array"),
    ({"resourceSpans": ["x"]}, "ResourceSpans must be a JSON object"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}, "'soon' is not an integer"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 7}]}]}]}, "name must be a string"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": str(2**64)}]}]}]}, "not a valid"),
    ({"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": {"bytesValue": "%%%"}}]}}]},
     "is not base64"),
    ({"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": {"boolValue": "yes"}}]}}]},
     "must be true or false"),
])
def test_otlp_json_of_the_wrong_types_is_refused_with_the_field_named(doc: dict[str, Any], reason: str) -> None:
    with pytest.raises(Rejected) as refused:
        decode_traces(orjson.dumps(doc), "application/json")
    assert refused.value.status == 400 and reason in refused.value.detail, refused.value.detail


def test_more_than_1000_errors_in_one_request_keeps_1000_and_refuses_the_rest() -> None:
    mapped = map_traces(_span_request(1_001), project())
    assert len(mapped.events) == 1_000 and mapped.rejected == 1
    assert "more than 1000 errors in one request" in mapped.error_message


def test_the_project_rate_limit_applies_to_otlp_events(gateway: httpx.Client) -> None:
    r = gateway.post("/v1/traces", content=_span_request(3).SerializeToString(),
                     headers={**PROTOBUF, "Authorization": "Bearer slowkey"})
    assert r.status_code == 429 and "exceed project 3's burst of 2" in _detail(r)
    assert r.headers["retry-after"] == "1"
