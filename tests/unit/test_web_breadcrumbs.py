"""Breadcrumb times: epoch seconds, numeric strings and ISO 8601 read as a time and a distance to the event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from errstream.web.breadcrumbs import crumb_time

EVENT = datetime(2026, 12, 7, 14, 3, 9, 700_000, tzinfo=UTC)


@pytest.mark.parametrize("value, shown", [
    (EVENT.timestamp() - 2.288, "14:03:07.412 (−2.3 s)"),
    (str(EVENT.timestamp() - 2.288), "14:03:07.412 (−2.3 s)"),
    ("2026-12-07T14:03:07.412Z", "14:03:07.412 (−2.3 s)"),
    ("2026-12-07T14:03:10.700000+00:00", "14:03:10.700 (+1.0 s)"),
    ("yesterday-ish", "yesterday-ish"),
    (None, ""),
    ("x" * 100, "x" * 40),
    (1e20, "1e+20"),
])
def test_crumb_times(value: object, shown: str) -> None:
    assert crumb_time(value, EVENT) == shown
