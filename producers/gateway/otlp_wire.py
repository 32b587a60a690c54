"""OTLP/HTTP bodies in and out: protobuf or JSON requests, the matching response, partial success.

OTLP/HTTP (https://opentelemetry.io/docs/specs/otlp/#otlphttp) sends an ``Export*ServiceRequest`` as
binary protobuf (``application/x-protobuf``) or as protobuf's JSON mapping (``application/json``), whose
one deviation from the standard mapping is that trace and span ids are hex, not base64. Both are decoded
into the messages of ``opentelemetry-proto`` (the OpenTelemetry project's own generated code, so the
mapping reads one type) and the response goes back in the request's encoding. Binary protobuf is parsed by
the installed protobuf backend (upb, in C); JSON by one walk over the object against the message
descriptors, the C constructor building the message (``json_format.ParseDict``, which reflects on every
field in Python, cost 400 µs for a one-span export).

Hostile bodies are refused here with a reason: a truncated or malformed protobuf, JSON that is not OTLP
(a value of the wrong type names its field), ids that are not hex, messages nested deeper than
``MAX_DEPTH`` in JSON or protobuf's recursion limit (100) in binary, another content type (415), and more
records in one request than ``MAX_RECORDS``.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
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


_HEX_IDS = frozenset({"trace_id", "span_id", "parent_span_id"})  # OTLP/JSON's one deviation: these bytes are hex
_INTS = frozenset({FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
                   FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
                   FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
                   FieldDescriptor.TYPE_SFIXED64})
_FLOATS = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})
_URLSAFE = str.maketrans("-_", "+/")
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _Invalid(ValueError):
    """A JSON value that does not fit its OTLP field; the message names the field."""


@cache  # one entry per message type of OTLP (a few dozen)
def _fields_of(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """A message's fields by JSON (camelCase) and by proto (snake_case) name, as protobuf's JSON parser accepts."""
    return {**{f.name: f for f in descriptor.fields}, **{f.json_name: f for f in descriptor.fields}}


def _message(doc: Any, descriptor: Descriptor, depth: int) -> dict[str, Any]:
    """A JSON object → the keyword arguments of the message's constructor (snake_case, values converted).

    protobuf's own ``json_format.ParseDict`` reflects on every field in Python and cost 400 µs for a one-span
    export, ten times the rest of the request; this walks the object once and lets the C constructor build
    the message. Unknown fields (and unknown enum names) are ignored, as OTLP asks of receivers."""
    if not isinstance(doc, dict):
        raise _Invalid(f"{descriptor.name} must be a JSON object")
    if depth > MAX_DEPTH:
        raise _Invalid(f"nested more than {MAX_DEPTH} levels deep")
    fields = _fields_of(descriptor)
    out: dict[str, Any] = {}
    for key, value in doc.items():
        fd = fields.get(key)
        if fd is None or value is None:
            continue
        if fd.is_repeated:
            if not isinstance(value, list):
                raise _Invalid(f"{descriptor.name}.{key} must be a JSON array")
            out[fd.name] = [_value(fd, item, depth) for item in value]
        else:
            converted = _value(fd, value, depth)
            if converted is not _SKIP:
                out[fd.name] = converted
    return out


_SKIP = object()


def _value(fd: FieldDescriptor, value: Any, depth: int) -> Any:
    kind = fd.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return _message(value, fd.message_type, depth + 1)
    if kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            raise _Invalid(f"{fd.json_name} must be a string")
        return value
    if kind in _INTS:
        if isinstance(value, str) or (isinstance(value, float) and value.is_integer()):
            try:
                return int(value)
            except ValueError:
                raise _Invalid(f"{fd.json_name} {str(value)[:40]!r} is not an integer") from None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Invalid(f"{fd.json_name} must be an integer")
    if kind == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            raise _Invalid(f"{fd.json_name} must be a string")
        try:
            if fd.name in _HEX_IDS:
                return bytes.fromhex(value)
            # protobuf's JSON takes standard or URL-safe base64, padded or not
            return base64.b64decode(value.translate(_URLSAFE) + "=" * (-len(value) % 4), validate=True)
        except ValueError:
            what = "hex (OTLP/JSON ids are hex)" if fd.name in _HEX_IDS else "base64"
            raise _Invalid(f"{fd.json_name} {value[:40]!r} is not {what}") from None
    if kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise _Invalid(f"{fd.json_name} must be true or false")
        return value
    if kind in _FLOATS:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        raise _Invalid(f"{fd.json_name} must be a number")
    if kind == FieldDescriptor.TYPE_ENUM:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            known = fd.enum_type.values_by_name.get(value)
            return known.number if known is not None else _SKIP
        raise _Invalid(f"{fd.json_name} must be an enum name or number")
    return _SKIP  # groups: not in OTLP


def _parse(body: bytes, kind: str, message: M, what: str) -> M:
    if kind == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise Rejected(400, "invalid_protobuf", f"body is not a valid {what}: {exc}"[:500]) from None
        return message
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Rejected(400, "invalid_otlp", f"body must be a JSON object ({what})")
    try:
        return type(message)(**_message(doc, message.DESCRIPTOR, 0))
    except (_Invalid, RecursionError, ValueError, TypeError) as exc:
        raise Rejected(400, "invalid_otlp", f"body is not a valid {what}: {exc}"[:500]) from None


def _checked(request: M, body: bytes, content_type: str | None) -> tuple[M, str]:
    kind = content_kind(content_type)
    what = type(request).__name__
    request = _parse(body, kind, request, what)
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
