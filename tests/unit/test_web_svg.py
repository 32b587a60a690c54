"""Chart axis labels read sensibly on small counts (they read "1/0/0" for a peak of 1)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from errstream.web.svg import columns, stacked_levels


def _axis(svg: str) -> list[str]:
    return re.findall(r'text-anchor="end">([^<]*)</text>', svg)


def test_a_peak_of_one_is_labelled_zero_and_one() -> None:
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    assert _axis(columns([(t0, 0), (t0 + timedelta(hours=1), 1)])) == ["0", "1"]


def test_larger_peaks_get_a_middle_line() -> None:
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    assert _axis(columns([(t0, 1_000), (t0 + timedelta(hours=1), 3)])) == ["0", "500", "1,000"]


def test_one_busy_minute_is_one_thin_column_at_its_time_not_the_whole_width() -> None:
    start = datetime(2026, 12, 7, 14, 1, tzinfo=UTC)
    chart = str(stacked_levels([(start + timedelta(minutes=50), "error", 7), (start + timedelta(minutes=50), "info", 3)],
                               start))
    rects = re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', chart)
    assert len(rects) == 2 and {x for x, _ in rects} == {rects[0][0]}  # stacked in one slot
    x, w = float(rects[0][0]), float(rects[0][1])
    assert w < 460 / 60 and 40 + (460 - 44) * 50 / 60 - 1 < x < 40 + (460 - 44) * 51 / 60
    assert re.findall(r'text-anchor="(?:start|middle|end)">(\d\d:\d\d)</text>', chart) == [
        "14:01", "14:16", "14:31", "14:46", "15:01"]
    assert _axis(chart)[:3] == ["0", "5", "10"]  # counts: 0, the middle and the peak (7 + 3)
