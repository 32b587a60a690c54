"""Chart axis labels read sensibly on small counts (they read "1/0/0" for a peak of 1)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from errstream.web.svg import columns


def _axis(svg: str) -> list[str]:
    return re.findall(r'text-anchor="end">([^<]*)</text>', svg)


def test_a_peak_of_one_is_labelled_zero_and_one() -> None:
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    assert _axis(columns([(t0, 0), (t0 + timedelta(hours=1), 1)])) == ["0", "1"]


def test_larger_peaks_get_a_middle_line() -> None:
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    assert _axis(columns([(t0, 1_000), (t0 + timedelta(hours=1), 3)])) == ["0", "500", "1,000"]
