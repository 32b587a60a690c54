"""OTLP/HTTP bodies in and out: protobuf or JSON requests, the matching response, partial success.

OTLP/HTTP (https://opentelemetry.io/docs/specs/otlp/#otlphttp) sends an ``Export*ServiceRequest`` as
binary protobuf (``application/x-protobuf``) or as protobuf's JSON mapping (``application/json``), whose
one deviation from the standard mapping is that trace and span ids are hex, not base64. Both are decoded
into the messages of ``opentelemetry-proto`` (the OpenTelemetry project's own generated code, so the
mapping reads one type) and the response goes back in the request's encoding.

Hostile bodies are refused here with a reason: a truncated or malformed protobuf, JSON that is not OTLP,
ids that are not hex, nesting deeper than protobuf's recursion limit (100 levels, for binary and JSON
alike), another content type (415), and more records in one request than ``MAX_RECORDS``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from producers.gateway.errors import Rejected

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# Spans or log records in one request. The SDKs' batch processors send 512, the Collector's batch processor
# 8,192 by default; a request of 100,000 is refused whole rather than decoded into 100,000 Python objects.
MAX_RECORDS = 20_000
M = TypeVar("M", ExportTraceServiceRequest, ExportLogsServiceRequest)
MAX_DEPTH = 64  # AnyValue nesting (kvlist in kvlist ...); protobuf's own limit is 100


@dataclass(frozen=True, slots=True)
class Reply:
    """A response body in the request's encoding (the ASGI layer sends it as it is)."""

    body: bytes
    content_type: str


def content_kind(content_type: str | None) -> str:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in (PROTOBUF, JSON):
        return kind
    raise Rejected(415, "unsupported_content_type", f"Content-Type {kind or '(none)'!r} is not OTLP/HTTP: send "
                   f"{PROTOBUF} or {JSON}")


def _hex_to_b64(value: Any, field: str) -> Any:
    if not isinstance(value, str) or not value:
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise Rejected(400, "invalid_otlp", f"{field} {value[:40]!r} is not hex (OTLP/JSON ids are hex)") from None
    return base64.b64encode(raw).decode()


def _fix_ids(items: Any, id_fields: tuple[str, ...]) -> None:
    """OTLP/JSON's hex ids → the base64 that protobuf's JSON mapping expects for bytes fields."""
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        for name in id_fields:
            for key in (name, _camel(name)):
                if key in item:
                    item[key] = _hex_to_b64(item[key], key)
        for link in item.get("links") or []:
            if isinstance(link, dict):
                for key in ("traceId", "trace_id", "spanId", "span_id"):
                    if key in link:
                        link[key] = _hex_to_b64(link[key], key)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _children(doc: Any, *path: str) -> list[Any]:
    """The lists at ``path`` below ``doc``, accepting camelCase and snake_case keys as protobuf's parser does."""
    level = [doc]
    for name in path:
        nxt: list[Any] = []
        for node in level:
            if isinstance(node, dict):
                value = node.get(_camel(name), node.get(name))
                if isinstance(value, list):
                    nxt.extend(value)
        level = nxt
    return level


def _parse(body: bytes, kind: str, message: Message, what: str) -> None:
    if kind == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise Rejected(400, "invalid_protobuf", f"body is not a valid {what}: {exc}"[:500]) from None
        return
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Rejected(400, "invalid_otlp", f"body must be a JSON object ({what})")
    if isinstance(message, ExportTraceServiceRequest):
        _fix_ids(_children(doc, "resource_spans", "scope_spans", "spans"), ("trace_id", "span_id", "parent_span_id"))
    else:
        _fix_ids(_children(doc, "resource_logs", "scope_logs", "log_records"), ("trace_id", "span_id"))
    try:
        # Unknown fields are ignored, as the OTLP specification asks of receivers (newer senders add fields).
        json_format.ParseDict(doc, message, ignore_unknown_fields=True, max_recursion_depth=MAX_DEPTH)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise Rejected(400, "invalid_otlp", f"body is not a valid {what}: {exc}"[:500]) from None


def _checked(request: M, body: bytes, content_type: str | None) -> tuple[M, str]:
    kind = content_kind(content_type)
    what = type(request).__name__
    _parse(body, kind, request, what)
    # Every record takes at least two bytes (protobuf: a tag and a length; JSON: "{}"), so a body shorter than
    # twice the limit cannot hold too many and is not counted (a walk over every resource and scope).
    records = _count(request) if len(body) > 2 * MAX_RECORDS else 0
    if records > MAX_RECORDS:
        noun = "spans" if isinstance(request, ExportTraceServiceRequest) else "log records"
        raise Rejected(413, "too_many_records", f"{records} {noun} in one request exceed the limit of "
                       f"{MAX_RECORDS}; send smaller batches")
    return request, kind


def _count(request: Message) -> int:
    if isinstance(request, ExportTraceServiceRequest):
        return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    assert isinstance(request, ExportLogsServiceRequest)
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


def decode_traces(body: bytes, content_type: str | None) -> tuple[ExportTraceServiceRequest, str]:
    """The request and its encoding (the reply's), or ``Rejected`` with the reason."""
    return _checked(ExportTraceServiceRequest(), body, content_type)


def decode_logs(body: bytes, content_type: str | None) -> tuple[ExportLogsServiceRequest, str]:
    return _checked(ExportLogsServiceRequest(), body, content_type)


_EMPTY = {PROTOBUF: Reply(b"", PROTOBUF), JSON: Reply(b"{}", JSON)}  # full success: an empty response message


def _reply(message: Message, kind: str) -> Reply:
    if kind == PROTOBUF:
        return Reply(message.SerializeToString(), PROTOBUF)
    return Reply(orjson.dumps(json_format.MessageToDict(message)), JSON)


def traces_reply(kind: str, rejected: int, error: str) -> Reply:
    """``ExportTraceServiceResponse``; ``partial_success`` only when some spans were refused."""
    if not rejected and not error:
        return _EMPTY[kind]
    response = ExportTraceServiceResponse()
    response.partial_success.CopyFrom(ExportTracePartialSuccess(rejected_spans=rejected, error_message=error))
    return _reply(response, kind)


def logs_reply(kind: str, rejected: int, error: str) -> Reply:
    if not rejected and not error:
        return _EMPTY[kind]
    response = ExportLogsServiceResponse()
    response.partial_success.CopyFrom(ExportLogsPartialSuccess(rejected_log_records=rejected, error_message=error))
    return _reply(response, kind)


def hex_id(raw: bytes) -> str | None:
    """A binary trace or span id as the lower-case hex our events carry; all-zero ids mean "none"."""
    if not raw or not raw.strip(b"\0"):
        return None
    return raw.hex()


# HTTP status → the gRPC code OTLP's Status message carries (the OTLP/HTTP specification's mapping).
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 429: 8, 500: 13, 502: 14, 503: 14, 504: 14}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def error_reply(status: int, detail: str, content_type: str | None) -> Reply:
    """A refusal as OTLP/HTTP asks: a ``google.rpc.Status`` in the request's encoding.

    The JSON form also carries ``detail``, the field every other gateway endpoint answers with. The protobuf
    form is written by hand (two fields), since ``opentelemetry-proto`` does not ship ``google.rpc``.
    """
    code = _GRPC_CODES.get(status, 2)  # 2: UNKNOWN
    try:
        kind = content_kind(content_type)
    except Rejected:
        kind = JSON
    if kind == PROTOBUF:
        message = detail.encode()
        return Reply(b"\x08" + _varint(code) + b"\x12" + _varint(len(message)) + message, PROTOBUF)
    return Reply(orjson.dumps({"code": code, "message": detail, "detail": detail}), JSON)
