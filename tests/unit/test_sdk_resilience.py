"""The SDK never hurts the app: with the broker unreachable, calls stay fast, memory stays flat, drops are counted."""

from __future__ import annotations

import logging
import time
import tracemalloc

from errstream_core.settings import Settings
from producers.integrations import ErrstreamHandler
from producers.sdk import Client
from tests.support.gateway import free_port


def _fail(n: int) -> None:
    payload = {"order": n, "lines": list(range(20))}  # locals the SDK must not keep alive
    raise ConnectionError(f"inventory call {n} failed: {len(payload)}")


def test_app_keeps_running_when_the_broker_is_down() -> None:
    closed_port = free_port()  # nothing listens here
    client = Client("checkout", settings=Settings(kafka_bootstrap=f"127.0.0.1:{closed_port}"), queue_size=500)
    logger = logging.getLogger("checkout.down")
    logger.propagate = False
    logger.addHandler(ErrstreamHandler(client))

    def capture_many(n: int) -> list[float]:
        costs = []
        for i in range(n):
            try:
                _fail(i)
            except ConnectionError as exc:
                start = time.perf_counter()
                client.capture_exception(exc)
                costs.append(time.perf_counter() - start)
        return costs

    capture_many(1_000)  # the queue (500) is full from here on
    started = time.perf_counter()
    costs = capture_many(20_000)
    for i in range(1_000):
        try:
            _fail(i)
        except ConnectionError:
            logger.exception("checkout failed")
    elapsed = time.perf_counter() - started
    costs.sort()
    # Generous bounds (shared, loaded CI machines); a call that waited on the network would take seconds.
    assert costs[len(costs) // 2] < 200e-6, f"median capture took {costs[len(costs) // 2] * 1e6:.0f} µs"
    assert costs[int(len(costs) * 0.99)] < 5e-3, f"p99 capture took {costs[int(len(costs) * 0.99)] * 1e3:.1f} ms"
    assert elapsed < 15, f"21,000 failed calls took {elapsed:.1f} s"

    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        capture_many(10_000)
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert grown < 2_000_000, f"memory grew by {grown} bytes while the queue was full"

    stats = client.stats
    assert stats["queued"] == 32_000 and stats["sent"] == 0 and stats["connected"] is False
    assert stats["dropped"] == 32_000 - 500, stats  # the oldest ones, counted one by one
    assert stats["connect_failures"] >= 1
    assert client.transport.pending() == 500

    started = time.perf_counter()
    assert client.flush(10) is False  # nothing can be delivered: say so at once, do not hang the exit
    client.close(2)
    assert time.perf_counter() - started < 3
    assert client.stats["dropped"] == 32_000  # what was still queued at close is counted too


def test_no_sdk_entry_point_raises_into_the_app() -> None:
    client = Client("checkout", settings=Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}"), queue_size=10)

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("broken __str__")

    try:
        raise Unprintable()
    except Unprintable as exc:
        assert client.capture_exception(exc) is not None  # captured with a placeholder message
    assert client.capture_exception() is None  # nothing being handled: nothing to report
    assert client.capture_exception("not an exception") is None  # type: ignore[arg-type]
    assert client.capture_message(object()) is not None  # type: ignore[arg-type]
    client.add_breadcrumb(data={"not": object()})
    assert client.stats["internal_errors"] == 1
    pending = list(client.transport._queue)
    event = client.build_event(pending[0])
    assert event["exceptions"][0]["value"] == "<unprintable Unprintable>"
    client.close(0.5)
