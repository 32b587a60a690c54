"""Request bodies at the gateway: brotli (what sentry-sdk sends when brotli is importable) with gzip's limits."""

from __future__ import annotations

import gzip
import tracemalloc

import brotli
import pytest

from producers.gateway.body import decode_body
from producers.gateway.errors import Rejected

LIMIT = 5_000_000


@pytest.mark.parametrize("encoding,compress", [("br", lambda b: brotli.compress(b, quality=5)),
                                               ("gzip", lambda b: gzip.compress(b, compresslevel=6))])
def test_a_decompression_bomb_costs_at_most_the_limit(encoding: str, compress: object) -> None:
    bomb = compress(b"\0" * 100_000_000)  # type: ignore[operator]
    assert len(bomb) < 300_000
    tracemalloc.start()
    try:
        with pytest.raises(Rejected) as refused:
            decode_body(bomb, encoding, LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.status == 413 and refused.value.reason == "decompressed_too_large"
    assert peak < 3 * LIMIT, f"{encoding}: {peak:,} bytes allocated for a {LIMIT:,}-byte limit"


def test_brotli_bodies_decode_and_broken_ones_are_400() -> None:
    payload = b'{"event_id": "x"}\n' * 1_000
    assert decode_body(brotli.compress(payload), "br", LIMIT) == payload
    assert decode_body(brotli.compress(payload), " BR ", LIMIT) == payload
    for broken in (b"not brotli at all", brotli.compress(payload)[:-4]):
        with pytest.raises(Rejected) as refused:
            decode_body(broken, "br", LIMIT)
        assert refused.value.status == 400 and "brotli" in refused.value.detail
