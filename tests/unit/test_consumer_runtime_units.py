"""Small parts of the consumer runtime: error classification, bisection, backoff, outage logging."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from errstream_core.consumer.outage import Backoff, Outage
from sinks.clickhouse import storage


def test_row_errors_are_told_apart_from_an_unreachable_server() -> None:
    assert storage.is_row_error(struct.error("argument out of range"))
    assert storage.is_row_error(OverflowError("int too big"))
    assert storage.is_row_error(DataError("Unable to create native array for column `minute`"))
    assert storage.is_row_error(DatabaseError("Code: 27. DB::Exception: Cannot parse input"))
    assert not storage.is_row_error(OperationalError("connection refused"))
    assert not storage.is_row_error(DatabaseError("Code: 60. DB::Exception: Unknown table"))
    assert storage.is_row_error(AttributeError("'dict' object has no attribute 'encode'"))
    assert not storage.is_row_error(ConnectionRefusedError())
    assert not storage.is_row_error(TimeoutError())


def test_bisect_dead_letters_only_the_bad_rows_with_deterministic_tokens() -> None:
    tokens: list[str] = []
    written: list[int] = []
    refused: list[int] = []

    async def write(items: Sequence[int], token: str) -> None:
        tokens.append(token)
        if 13 in items or 40 in items:
            raise storage.RowError("bad")
        written.extend(items)

    async def refuse(item: int, exc: storage.RowError) -> None:
        refused.append(item)

    asyncio.run(storage.bisect(list(range(64)), "t", lambda i: i, write, refuse))
    assert sorted(refused) == [13, 40]
    assert sorted(written) == [i for i in range(64) if i not in (13, 40)]
    first = list(tokens)
    tokens.clear()
    written.clear()
    refused.clear()
    asyncio.run(storage.bisect(list(range(64)), "t", lambda i: i, write, refuse))
    assert tokens == first  # a replay splits the same way: ClickHouse drops the repeated blocks by token
    assert first[0] == "t" and "t/0-31" in first


def test_backoff_is_exponential_capped_and_jittered() -> None:
    b = Backoff(initial=0.2, cap=10)
    delays = [b.next_delay() for _ in range(12)]
    assert delays[0] <= 0.2 and max(delays) <= 10 and delays[-1] >= 5
    assert len({round(d, 6) for d in delays}) == len(delays)
    b.reset()
    assert b.next_delay() <= 0.2


def test_an_outage_logs_once_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    outage = Outage("ClickHouse", logging.getLogger("t"), report_every=30, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "t"):
        for _ in range(1_000):
            now[0] += 0.01
            outage.failed(ConnectionRefusedError())
        assert len(caplog.records) == 1  # 10 s of failures: one line
        now[0] += 25
        outage.failed(ConnectionRefusedError())
        assert len(caplog.records) == 2 and "still unreachable" in caplog.records[-1].getMessage()
        outage.ok()
        outage.ok()
        assert len(caplog.records) == 3 and "recovered" in caplog.records[-1].getMessage()
