"""Request bodies: size limits before and after decompression, and the encodings SDKs use.

Limits are checked while reading (``Incoming.body``) and while inflating, never
after, so a decompression bomb or a huge upload costs at most the limit in memory.
"""

from __future__ import annotations

import base64
import binascii
import zlib

# Sentry SDKs compress with brotli whenever the `brotli` module is installed next to them, so the gateway
# always has it (the `gateway` extra): a 415 there would lose every event of those apps.
import brotli

from producers.gateway.errors import Rejected


def _inflate(data: bytes, wbits: int, limit: int, name: str) -> bytes:
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise Rejected(400, "bad_compression", f"body is not valid {name}: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise Rejected(413, "decompressed_too_large", f"decompressed body exceeds the limit of {limit} bytes")
    return out


def _unbrotli(data: bytes, limit: int) -> bytes:
    """Brotli with the same bound as gzip: the decoder stops once it has produced ``limit + 1`` bytes."""
    d = brotli.Decompressor()
    try:
        out = d.process(data, output_buffer_limit=limit + 1)
    except brotli.error as exc:
        raise Rejected(400, "bad_compression", f"body is not valid brotli: {exc}") from None
    if len(out) > limit:
        raise Rejected(413, "decompressed_too_large", f"decompressed body exceeds the limit of {limit} bytes")
    if not d.is_finished():
        raise Rejected(400, "bad_compression", "body is not valid brotli: the stream is truncated")
    return out


def decode_body(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate — zlib or raw —, br, identity)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return data
    if encoding in ("gzip", "x-gzip"):
        return _inflate(data, 16 + zlib.MAX_WBITS, limit, "gzip")
    if encoding == "deflate":
        # RFC 9110 says zlib-wrapped; some clients send raw deflate: accept both.
        wbits = zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS
        return _inflate(data, wbits, limit, "deflate")
    if encoding == "br":
        return _unbrotli(data, limit)
    raise Rejected(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported (gzip, deflate, br)")


def legacy_store_body(data: bytes, limit: int) -> bytes:
    """Old Sentry SDKs posted base64 of zlib-deflated JSON to /store/ without a Content-Encoding."""
    stripped = data.lstrip()
    if not stripped or stripped[:1] in (b"{", b"["):
        return data
    try:
        raw = base64.b64decode(stripped, validate=False)
    except (binascii.Error, ValueError):
        return data
    return _inflate(raw, zlib.MAX_WBITS, limit, "base64+zlib") if raw[:1] == b"\x78" else data
