"""``errstream.web.overview.Fresh``: how old a shared value may be, and who waits for its recomputation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from errstream.local.process import wait_for
from errstream.web.overview import Fresh

KEY = ("24h", None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def test_within_the_refresh_interval_the_same_value_is_served() -> None:
    clock, compute = Clock(), Counter()
    fresh: Fresh[int] = Fresh(10, 60, clock)
    assert fresh.get(KEY, compute) == 1
    clock.now += 9.9
    assert fresh.get(KEY, compute) == 1 and compute.calls == 1
    assert fresh.get(("7d", None), compute) == 2  # each window and service has its own


def test_past_the_refresh_interval_the_old_value_is_served_while_it_is_recomputed() -> None:
    clock, compute = Clock(), Counter()
    fresh: Fresh[int] = Fresh(10, 60, clock)
    fresh.get(KEY, compute)
    clock.now += 30
    assert fresh.get(KEY, compute) == 1  # served at once
    assert wait_for(lambda: fresh.get(KEY, compute), lambda v: v == 2, 10, "the background recomputation") == 2
    assert compute.calls == 2


def test_past_the_maximum_age_the_request_waits_for_a_new_value() -> None:
    clock, compute = Clock(), Counter()
    fresh: Fresh[int] = Fresh(10, 60, clock)
    fresh.get(KEY, compute)
    clock.now += 60
    assert fresh.get(KEY, compute) == 2


def test_refresh_zero_computes_every_time() -> None:
    compute = Counter()
    fresh: Fresh[int] = Fresh(0, 0)
    assert [fresh.get(KEY, compute) for _ in range(3)] == [1, 2, 3]


def test_requests_that_find_no_value_share_one_computation() -> None:
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow() -> int:
        calls.append(1)
        started.set()
        release.wait(10)
        return 42

    fresh: Fresh[int] = Fresh(10, 60)
    with ThreadPoolExecutor(4) as ex:
        futures = [ex.submit(fresh.get, KEY, slow) for _ in range(4)]
        assert started.wait(10)  # one computes; the others wait for it or find its value
        release.set()
        assert [f.result(10) for f in futures] == [42] * 4
    assert len(calls) == 1


def test_a_failed_computation_reaches_the_request_that_waited_for_it() -> None:
    def fail() -> int:
        raise ConnectionError("ClickHouse is away")

    fresh: Fresh[int] = Fresh(10, 60)
    with pytest.raises(ConnectionError):
        fresh.get(KEY, fail)
    assert fresh.get(KEY, lambda: 7) == 7
