"""ClickHouse writes for the sinks: one attempt, classified, and split when a row is at fault.

clickhouse-connect serialises on the client, so a Python value outside a column's
range fails in the client (``struct.error``, ``OverflowError``, ``ValueError``,
``TypeError``) before anything reaches the server; the server refuses rows it cannot
parse with a data error code. Both are the record's fault: the batch is split in two
(recursively) so only the offending rows are dead-lettered. Everything else —
connection refused, timeouts, a server that is starting — is an
``InfrastructureError``: the caller keeps its batch and retries with backoff.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DataError, OperationalError
from prometheus_client import Counter
from urllib3.exceptions import HTTPError

from errstream_core.consumer.outage import InfrastructureError

T = TypeVar("T")

# ClickHouse's cost of an insert is mostly fixed (a part per table and materialized view): the count of
# inserts per flush is what tests/e2e/test_broker_budget.py guards, beside the broker's requests.
INSERTS = Counter("errstream_clickhouse_inserts", "Inserts sent to ClickHouse, by table", ["table"])

# Server error codes that mean "this data", not "this server": CANNOT_PARSE_*, TYPE_MISMATCH,
# ARGUMENT_OUT_OF_BOUND, CANNOT_CONVERT_TYPE, INCORRECT_DATA, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE,
# DECIMAL_OVERFLOW, TOO_LARGE_STRING_SIZE, CANNOT_PARSE_UUID, ... (ClickHouse's ErrorCodes.cpp).
DATA_ERROR_CODES = frozenset({6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 321, 376, 407, 691, 1001})
_CODE = re.compile(r"(?:Code:|error code)\s*(\d+)", re.IGNORECASE)


class RowError(Exception):
    """The rows (not the server) are at fault."""


def is_row_error(exc: BaseException) -> bool:
    """Data at fault (split the batch) rather than the server or the network (retry it)."""
    if isinstance(exc, OperationalError):
        return False
    if isinstance(exc, DataError):  # the client could not serialise a value ("Unable to create native array")
        return True
    if isinstance(exc, ClickHouseError):
        code = getattr(exc, "code", None)
        if code is None and (m := _CODE.search(str(exc))):
            code = int(m.group(1))
        return code in DATA_ERROR_CODES
    if isinstance(exc, OSError | HTTPError | TimeoutError):
        return False  # the network
    # Anything else raised inside the client is its serialiser choking on a value: struct.error,
    # OverflowError, ValueError, TypeError, or e.g. AttributeError for a dict where a str belongs.
    return True


async def call(fn: Callable[[], T]) -> T:
    """Run a blocking ClickHouse call in a thread; classify its failure."""
    try:
        return await asyncio.to_thread(fn)
    except Exception as exc:
        if is_row_error(exc):
            raise RowError(f"{type(exc).__name__}: {str(exc)[:1_000]}") from exc
        raise InfrastructureError("ClickHouse", exc) from exc


async def insert(client: Client, table: str, rows: list[list[Any]], columns: Sequence[str],
                 settings: dict[str, Any] | None = None) -> None:
    if rows:
        INSERTS.labels(table.rsplit(".", 1)[-1]).inc()
        await call(lambda: client.insert(table, rows, column_names=list(columns), settings=settings or {}))


async def bisect(items: Sequence[T], token: str, key: Callable[[T], object],
                 write: Callable[[Sequence[T], str], Awaitable[None]],
                 refuse: Callable[[T, RowError], Awaitable[None]]) -> None:
    """``write(items, token)``; on a ``RowError`` split in halves (tokens ``token/first-last`` by ``key``).

    Deterministic: the same items fail the same way on a replay, so the halves get the same
    tokens and ClickHouse drops what was already written.
    """
    try:
        await write(items, token)
    except RowError as exc:
        if len(items) == 1:
            await refuse(items[0], exc)
            return
        mid = len(items) // 2
        for half in (items[:mid], items[mid:]):
            await bisect(half, f"{token}/{key(half[0])}-{key(half[-1])}", key, write, refuse)
