"""Escalating issues without Kafka: the forecast, the sliding hour, the detector's check, the action's record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from errstream.issue_actions import ActionRequest, plan_changes
from reports import search_syntax
from schemas.issue_status import ESCALATION_DETECTOR, IssueStatusChange
from stream_processors.detection_agents.status import kept_status
from stream_processors.detection_rules.config import DetectionConfig
from stream_processors.detection_rules.escalating import (
    HOUR,
    EscalatingRule,
    EscalationWatch,
    ceiling_at,
    forecast,
    weekday,
)
from stream_processors.detection_rules.issues import IssueDetector, IssueState, silenced
from stream_processors.detection_signals import Signal

MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()  # a Monday
FP = "0" * 31 + "e"
FP2 = "0" * 31 + "f"


def sig(ts: float, *, fp: str = FP, offset: int | None = None) -> Signal:
    return Signal(event_id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"{fp}{ts}{offset}")), service="billing",
                  fingerprint=fp, title="KeyError: 'x'", level="error", ts=ts, received=ts, src_partition=0,
                  src_offset=offset)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


# --- the forecast ------------------------------------------------------------------------------

def test_weekday_of_epoch_seconds() -> None:
    assert weekday(MONDAY_NOON) == 0 and weekday(MONDAY_NOON + 86_400 * 6) == 6 and weekday(0) == 3  # Thursday


def test_a_steady_issue_gets_five_times_its_mean_on_top_of_it() -> None:
    start = int(MONDAY_NOON // HOUR) - 168
    # no variance: bursty ceiling 5 × peak = 30; steady ceiling mean 6 + clamp(1, 5, 8) × 6 = 36
    assert forecast([6] * 168, start, start - 500) == [36] * 7


def test_a_young_issue_gets_ten_times_its_busiest_hour() -> None:
    start = int(MONDAY_NOON // HOUR) - 168
    hourly = [0] * 160 + [3, 7, 2, 0, 0, 0, 1, 0]
    assert forecast(hourly, start, start + 160) == [70] * 7


def test_a_quiet_issue_and_a_small_one_get_the_minimum() -> None:
    start = int(MONDAY_NOON // HOUR) - 168
    assert forecast([0] * 168, start, start - 1_000) == [10] * 7
    assert forecast([0] * 168, start, None) == [10] * 7  # never seen at all
    assert forecast([0] * 168, start, None, EscalatingRule(min_per_hour=3)) == [3] * 7
    sparse = [1 if h % 17 == 0 else 0 for h in range(168)]
    assert forecast(sparse, start, start - 1) == [10] * 7  # its ceiling (2) is below the minimum


def _week(start: int, busy_day: int, busy: int, usual: int) -> list[int]:
    return [busy if weekday((start + h) * HOUR) == busy_day else usual for h in range(168)]


def test_a_bursty_issue_is_judged_by_its_busiest_hour() -> None:
    start = int(MONDAY_NOON // HOUR) - 168
    # Wednesdays at 40 an hour, other days 2: the coefficient of variation is high, so the bursty ceiling is
    # twice the busiest hour (the multiplier's floor), above five standard deviations over the mean (held at 8 ×)
    assert forecast(_week(start, 2, 40, 2), start, start - 1) == [80] * 7


def test_the_same_day_of_the_week_weighs_twice() -> None:
    start = int(MONDAY_NOON // HOUR) - 168
    got = forecast(_week(start, 2, 120, 100), start, start - 1)  # a steady issue, a little busier on Wednesdays
    assert got[2] == 620 and got[0] == got[1] == got[3] == 617  # 105 or 102.5 weighted, + 5 × the mean 102.9


def test_the_ceiling_in_force_is_the_weekday_of_the_event_time() -> None:
    rule = EscalatingRule()
    week = [10, 11, 12, 13, 14, 15, 16]
    assert ceiling_at(week, MONDAY_NOON, rule) == 10 and ceiling_at(week, MONDAY_NOON + 86_400 * 2, rule) == 12
    assert ceiling_at([], MONDAY_NOON, rule) == rule.min_per_hour


# --- the sliding hour --------------------------------------------------------------------------

def test_the_sliding_hour_weighs_the_previous_hour_by_what_is_left_of_it() -> None:
    w = EscalationWatch(archived_at="a")
    h0 = int(MONDAY_NOON // HOUR) * HOUR
    for i in range(40):
        w.add(h0 + 10 + i)
    assert w.last_hour() == 40
    w.add(h0 + HOUR + 15 * 60)  # a quarter into the next hour
    assert w.current == 1 and w.previous == 40 and w.last_hour() == pytest.approx(1 + 40 * 0.75)
    w.add(h0 + 30)  # late, within the previous hour: counted there
    assert w.previous == 41
    w.add(h0 - 10)  # older than the window: not counted
    assert w.previous == 41 and w.current == 1
    w.add(h0 + 3 * HOUR)  # two hours on: the old hours left the window
    assert (w.previous, w.current, w.last_hour()) == (0, 1, 1)
    assert EscalationWatch.from_list(orjson.loads(orjson.dumps(w.to_list()))) == w


# --- the detector ------------------------------------------------------------------------------

def _archived(at: float, forecast_: list[int], **more: object) -> dict:
    return {"status": "ignored", "action": "status", "changed_at": _iso(at), "changed_by": "alice",
            "ignore_until_escalating": True, "escalating_forecast": forecast_, **more}


def _feed(det: IssueDetector, state: IssueState | None, events: list[Signal], status: dict
          ) -> tuple[IssueState, list, tuple | None]:
    """What the agent does with one bundle: every event through observe, then one escalating check."""
    out = []
    for e in events:
        state, alerts = det.observe(state, e, status)
        out.extend(alerts)
    assert state is not None
    return state, out, det.escalate(state, FP, events[-1], status)


def test_an_archived_issue_below_its_forecast_stays_silent_and_above_it_escalates_once() -> None:
    det = IssueDetector(DetectionConfig(thresholds=(10, 100), cooldown=0))
    state, _ = det.observe(None, sig(MONDAY_NOON - 3_600, offset=0), None)
    status = _archived(MONDAY_NOON - 60, [50, 0, 0, 0, 0, 0, 0])
    n = iter(range(1, 10_000))
    state, out, hit = _feed(det, state, [sig(MONDAY_NOON + i, offset=next(n)) for i in range(50)], status)
    assert out == [] and hit is None  # 50 in the hour: not above the ceiling of 50
    assert silenced(state, sig(MONDAY_NOON + 51), status)
    state, out, hit = _feed(det, state, [sig(MONDAY_NOON + 60 + i, offset=next(n)) for i in range(5)], status)
    assert out == [] and hit is not None
    alert, changes = hit
    assert alert.kind == "escalating" and alert.fingerprint == FP and alert.dedup_key == f"escalating:{FP}"
    assert alert.details["seen"] == 55 and alert.details["expected"] == 50 and alert.details["weekday"] == "Monday"
    assert "55 events in the last hour" in alert.message and "expected at most 50 an hour on a Monday" in alert.message
    assert "by alice" in alert.message
    (change,) = changes
    assert (change.fingerprint, change.status, change.action, change.changed_by) == (
        FP, "escalating", "escalating", ESCALATION_DETECTOR)
    assert change.changed_at > datetime.fromisoformat(status["changed_at"])
    # from now on it is not silenced (before its own status comes back), and it escalates once only
    assert not silenced(state, sig(MONDAY_NOON + 70), status)
    state, out, hit = _feed(det, state, [sig(MONDAY_NOON + 80 + i, offset=next(n)) for i in range(100)], status)
    assert hit is None and [a.details["threshold"] for a in out if a.kind == "threshold"] == [100]


def test_the_check_is_deterministic_and_its_state_round_trips() -> None:
    det = IssueDetector(DetectionConfig())
    status = _archived(MONDAY_NOON - 60, [10] * 7)
    events = [sig(MONDAY_NOON + i, offset=i) for i in range(11)]
    first = _feed(det, None, events, status)[2]
    again = _feed(det, None, events, status)[2]  # a replayed bundle from the same state
    assert first is not None and again is not None
    assert first[0] == again[0] and first[1] == again[1]
    state, _, _ = _feed(det, None, events[:5], status)
    reloaded = det.load(orjson.loads(orjson.dumps(state.to_dict())))
    assert reloaded is not None and reloaded.escalation == state.escalation
    _, _, hit = _feed(det, reloaded, events[5:], status)
    assert hit is not None and hit[0].details["seen"] == 11


def test_a_new_archive_starts_a_new_watch_and_a_carried_one_keeps_it() -> None:
    det = IssueDetector(DetectionConfig())
    status = _archived(MONDAY_NOON - 60, [10] * 7)
    state, _, hit = _feed(det, None, [sig(MONDAY_NOON + i, offset=i) for i in range(8)], status)
    assigned = {**status, "action": "assign", "assignee": "bob", "changed_at": _iso(MONDAY_NOON + 10)}
    state, _, hit = _feed(det, state, [sig(MONDAY_NOON + 20 + i, offset=100 + i) for i in range(3)], assigned)
    assert hit is not None and hit[0].details["seen"] == 11  # the assignment kept the archive's count
    assert hit[1][0].assignee == "bob" and hit[0].details["archived_at"] == status["changed_at"]
    assert hit[1][0].changed_at > datetime.fromisoformat(assigned["changed_at"])  # after the latest record
    assert not silenced(state, sig(MONDAY_NOON + 30), assigned)
    again = _archived(MONDAY_NOON + 120, [10] * 7)  # archived again after it escalated: watched afresh
    state, _, hit = _feed(det, state, [sig(MONDAY_NOON + 130 + i, offset=200 + i) for i in range(5)], again)
    assert hit is None and state.escalation is not None and state.escalation.current == 5
    assert silenced(state, sig(MONDAY_NOON + 140), again)


def test_a_merged_member_brings_its_group_back_and_alerts_as_its_primary() -> None:
    det = IssueDetector(DetectionConfig())
    status = _archived(MONDAY_NOON - 60, [1] * 7)
    state = None
    for i in range(2):
        state, _ = det.observe(state, sig(MONDAY_NOON + i, fp=FP2, offset=i), status, FP)
    assert state is not None
    hit = det.escalate(state, FP2, sig(MONDAY_NOON + 1, fp=FP2, offset=1), status, FP)
    assert hit is not None and hit[0].fingerprint == FP
    assert [c.fingerprint for c in hit[1]] == [FP2, FP]


def test_other_statuses_are_not_watched() -> None:
    det = IssueDetector(DetectionConfig())
    plain = {"status": "ignored", "changed_at": _iso(MONDAY_NOON - 60)}
    state, _, hit = _feed(det, None, [sig(MONDAY_NOON + i, offset=i) for i in range(50)], plain)
    assert hit is None and state.escalation is None and "x" not in state.to_dict()
    escalated = {"status": "escalating", "changed_at": _iso(MONDAY_NOON), "ignore_until_escalating": False}
    state, out, hit = _feed(det, state, [sig(MONDAY_NOON + 60 + i, offset=100 + i) for i in range(5)], escalated)
    assert hit is None and not silenced(state, sig(MONDAY_NOON + 70), escalated)


def test_the_status_table_keeps_an_archive_as_published() -> None:
    change = IssueStatusChange(fingerprint=FP, status="ignored", action="status", ignore_until_escalating=True,
                               escalating_forecast=[5, 6, 7, 8, 9, 10, 11])
    kept = kept_status(change, None, None)
    assert kept["ignore_until_escalating"] is True and kept["escalating_forecast"] == [5, 6, 7, 8, 9, 10, 11]


# --- the contract and the action ---------------------------------------------------------------

def test_a_forecast_has_seven_days_or_none() -> None:
    with pytest.raises(ValidationError, match="7 numbers"):
        IssueStatusChange(fingerprint=FP, status="ignored", escalating_forecast=[1, 2])
    with pytest.raises(ValidationError):
        IssueStatusChange(fingerprint=FP, status="ignored", escalating_forecast=[-1] * 7)
    old = IssueStatusChange.model_validate_json(orjson.dumps({"fingerprint": FP, "status": "ignored"}))
    assert old.ignore_until_escalating is False and old.escalating_forecast == []  # older writers still parse


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_archive_publishes_the_forecast_and_an_assignment_carries_it() -> None:
    start = int(NOW.timestamp() // HOUR) - 168
    history = {FP: {"hourly": [6] * 168, "start_hour": start, "first_hour": start - 100}}
    (c,) = plan_changes(ActionRequest(action="archive", fingerprints=[FP], note="known"), {}, "alice", NOW, history)
    assert (c.status, c.action, c.ignore_until_escalating, c.escalating_forecast) == ("ignored", "status", True, [36] * 7)
    (same,) = plan_changes(ActionRequest(action="ignore", until_escalating=True, fingerprints=[FP]), {}, "a", NOW,
                           history)
    assert same.escalating_forecast == [36] * 7 and same.ignore_until_escalating
    state = c.model_dump()
    (a,) = plan_changes(ActionRequest(action="assign", fingerprints=[FP], assignee="bob"), {FP: state}, "x", NOW)
    assert a.status == "ignored" and a.ignore_until_escalating and a.escalating_forecast == [36] * 7
    (r,) = plan_changes(ActionRequest(action="resolve", fingerprints=[FP]), {FP: state}, "x", NOW)
    assert not r.ignore_until_escalating and r.escalating_forecast == []
    (nohist,) = plan_changes(ActionRequest(action="archive", fingerprints=[FP2]), {}, "x", NOW, {})
    assert nohist.escalating_forecast == [10] * 7


def test_until_escalating_is_for_ignore_and_archive_only() -> None:
    with pytest.raises(ValidationError, match="ignore and archive only"):
        ActionRequest(action="resolve", fingerprints=[FP], until_escalating=True)
    assert ActionRequest(action="archive", fingerprints=[FP]).escalating
    assert not ActionRequest(action="ignore", fingerprints=[FP]).escalating


def test_the_search_knows_archived_and_escalating() -> None:
    assert search_syntax.parse("is:archived").status == ["ignored"]
    assert search_syntax.parse("is:escalating is:regressed").status == ["escalating", "regressed"]


def test_escalating_is_an_open_status() -> None:
    from reports.issue_queries.models import OPEN_STATUSES, STATUSES

    assert "escalating" in OPEN_STATUSES and "escalating" in STATUSES and "ignored" not in OPEN_STATUSES


def test_a_forecast_computed_now_is_in_force_for_a_week_of_days() -> None:
    start = int(NOW.timestamp() // HOUR) - 168
    got = forecast([3] * 100 + [9] * 68, start, start - 1)
    for d in range(7):
        at = NOW + timedelta(days=d)
        assert ceiling_at(got, at.timestamp(), EscalatingRule()) == got[at.weekday()]


def test_the_web_forms_archive_button_and_checkbox() -> None:
    from errstream.web.pages import _action_from_form

    button = _action_from_form({"action": "archive"}, [FP])
    assert button.action == "archive" and button.escalating
    box = _action_from_form({"action": "ignore", "until_escalating": "1", "ignore_minutes": "60"}, [FP])
    assert box.escalating and box.ignore_minutes == 60
    other = _action_from_form({"action": "resolve", "until_escalating": "1"}, [FP])  # the box is for ignore only
    assert not other.escalating
    template = (Path(__file__).parents[2] / "errstream/web/templates/_actions.html").read_text()
    assert 'value="archive"' in template and 'name="until_escalating"' in template


def test_the_command_line_says_what_lifts_an_archive() -> None:
    from errstream.issue_cli import ignore_conditions

    same = ignore_conditions({"ignore_until_escalating": True, "escalating_forecast": [50] * 7})
    assert same == ["until escalating: more events in an hour than its forecast (50 an hour, every day)"]
    (week,) = ignore_conditions({"ignore_until_escalating": True, "escalating_forecast": [10, 10, 10, 10, 12, 5, 5]})
    assert "(Mon 10 · Tue 10 · Wed 10 · Thu 10 · Fri 12 · Sat 5 · Sun 5 an hour, UTC)" in week
    assert ignore_conditions({"ignore_until_escalating": True}) == [
        "until escalating: more events in an hour than its forecast"]
    assert ignore_conditions({"ignore_until_events": 100}) == ["until 100 more events"]
