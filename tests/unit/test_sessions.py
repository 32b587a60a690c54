"""Reading Sentry's session items and counting requests: what becomes a SessionAggregate, what is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from producers.sessions import SessionCounter, from_sentry_aggregates, from_sentry_session
from schemas.sessions import SessionAggregate


def test_a_session_counts_as_started_on_init_and_errored_or_crashed_by_its_id() -> None:
    first = from_sentry_session({"sid": "s1", "did": "u1", "init": True, "started": "2026-11-30T10:15:42Z",
                                 "status": "ok", "attrs": {"release": "app@1", "environment": "prod"}}, "shop")
    crash = from_sentry_session({"sid": "s1", "did": "u1", "started": "2026-11-30T10:15:42Z", "status": "crashed",
                                 "errors": 1, "attrs": {"release": "app@1"}}, "shop")
    assert first is not None and crash is not None
    assert (first.started, first.minute, first.release, first.environment) == (
        1, datetime(2026, 11, 30, 10, 15, tzinfo=UTC), "app@1", "prod")
    assert crash.started == 0 and crash.crashed_session_hashes == crash.errored_session_hashes != []
    assert crash.crashed_user_hashes == first.user_hashes


def test_aggregates_count_every_session_once() -> None:
    [agg] = from_sentry_aggregates({"aggregates": [{"started": "2026-11-30T10:15:00Z", "exited": 9, "errored": 2,
                                                    "crashed": 1}], "attrs": {"release": "shop@3"}}, "shop")
    assert (agg.started, agg.errored, agg.crashed) == (12, 3, 1)


@pytest.mark.parametrize("item", [None, [], "x", {"sid": "s"}, {"started": "not a date", "sid": "s"},
                                  {"sid": "s", "started": 10**30}])
def test_malformed_session_items_are_skipped(item: object) -> None:
    assert from_sentry_session(item, "shop") is None


def test_malformed_aggregates_are_skipped() -> None:
    assert from_sentry_aggregates({"aggregates": [{"started": "2026-11-30T10:15:00Z", "exited": -1},
                                                  {"started": "2026-11-30T10:15:00Z", "exited": "many"}, 7]},
                                  "shop") == []


def test_hashes_must_fit_clickhouse_uint64() -> None:
    with pytest.raises(ValidationError):
        SessionAggregate(service="s", minute=datetime.now(UTC), user_hashes=[2**64])


def test_the_request_counter_sends_one_aggregate_per_minute() -> None:
    sent: list[SessionAggregate] = []
    counter = SessionCounter("api", "production", "1.0", sent.append)
    at = datetime(2026, 11, 30, 10, 15, 5, tzinfo=UTC)
    for outcome in ["ok"] * 7 + ["errored"] * 2 + ["crashed"]:
        counter.record(outcome, user="u1", at=at)
    assert counter.flush() == 1
    [agg] = sent
    assert (agg.started, agg.errored, agg.crashed, len(agg.user_hashes), len(agg.crashed_user_hashes)) == (
        10, 3, 1, 1, 1)
