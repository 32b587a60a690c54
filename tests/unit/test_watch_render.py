"""`errstream watch`'s rendering and marks, on snapshots built by hand (the queries have an e2e test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from reports.watch import WatchIssue, WatchService, WatchSnapshot, render_plain, render_rich, sparkline, trend


def _issue(events: int, previous: int, first_seen: datetime | None, **kw: object) -> WatchIssue:
    return WatchIssue(fingerprint="a" * 32, title="TimeoutError: bank", service="payment", level="error",
                      events=events, previous=previous, per_minute=[0, 0, 1, events - 1, 0],
                      first_seen=first_seen, recovery_attempted=0, recovery_successful=0, **kw)  # type: ignore[arg-type]


def test_new_and_spike_marks() -> None:
    now = datetime.now(UTC)
    assert _issue(40, 0, now - timedelta(minutes=1)).is_new
    assert not _issue(40, 0, now - timedelta(hours=2)).is_new
    assert _issue(30, 10, None).is_spike and not _issue(29, 10, None).is_spike  # 3x the window before
    assert not _issue(9, 0, None).is_spike  # too few events to call it a spike


def test_trend_and_sparkline() -> None:
    assert trend(0, 0) == "±0" and trend(5, 0) == "new" and trend(150, 100) == "+50%" and trend(50, 100) == "-50%"
    assert sparkline([0, 0, 0]) == "   " and sparkline([0, 4, 8]) == " ▄█"
    assert sparkline([1, 1000])[0] == "▁"  # a non-zero minute always shows


def test_plain_and_rich_output_carry_the_same_facts() -> None:
    issue = _issue(40, 0, datetime.now(UTC)).model_copy(update={"recovery_attempted": 40,
                                                                "recovery_successful": 30})
    snap = WatchSnapshot(at=datetime(2026, 12, 7, 17, 0, tzinfo=UTC), minutes=5, issues=[issue], services=[
        WatchService(service="payment", events=40, previous=0, issues=1, recovery_attempted=40,
                     recovery_successful=30)])
    plain = render_plain(snap, " · service payment")
    assert "\x1b[" not in plain  # no escape codes for logs and dumb terminals
    assert "last 5 min · service payment · 40 events" in plain and "recovered 75% of 40" in plain
    assert "NEW SPIKE" in plain
    console = Console(record=True, width=160, force_terminal=True)
    console.print(render_rich(snap))
    text = console.export_text()
    assert "TimeoutError: bank" in text and "75% of 40" in text and "SPIKE" in text
    empty = render_plain(WatchSnapshot(at=snap.at, minutes=5, issues=[], services=[]))
    assert "no errors in this window" in empty
