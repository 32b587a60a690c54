"""The pure detection logic, without Kafka: windows, spike rule, cooldowns, issue and chain detectors."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from schemas.chains import ErrorChain
from schemas.events import ErrorEvent
from schemas.issue_status import IssueStatusChange
from schemas.processed import ProcessedEvent
from stream_processors.detection_agents.context import FORWARD_RECORD_BYTES, json_arrays
from stream_processors.detection_agents.status import kept_status
from stream_processors.detection_rules.chains import MAX_CHAIN_EVENTS, ChainState
from stream_processors.detection_rules.config import DetectionConfig
from stream_processors.detection_rules.cooldown import Cooldowns
from stream_processors.detection_rules.issues import IssueDetector, IssueState, silenced
from stream_processors.detection_rules.services import ServiceDetector, ServiceState
from stream_processors.detection_rules.windows import MinuteWindows
from stream_processors.detection_signals import Signal

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()
FP = "0" * 31 + "1"


def sig(ts: float, *, fp: str = FP, service: str = "billing", received: float | None = None,
        trace: str | None = None, span: str | None = None, parent: str | None = None) -> Signal:
    return Signal(event_id=str(uuid.uuid4()), service=service, fingerprint=fp, title="KeyError: 'x'", level="error",
                  ts=ts, received=received if received is not None else ts, trace_id=trace, span_id=span,
                  parent_span_id=parent)


# --- windows -----------------------------------------------------------------

def test_minutes_close_only_after_grace_and_gaps_close_as_zero() -> None:
    w = MinuteWindows(grace=30)
    assert w.add(T0 + 10).count == 1 and w.add(T0 + 50).count == 2
    assert w.add(T0 + 80).closed == []  # minute 0 ends at 60, grace until 90
    added = w.add(T0 + 95)
    assert added.closed == [(int(T0), 2)]
    assert w.add(T0 + 59).late  # minute 0 is closed: beyond grace
    added = w.add(T0 + 4 * 60 + 40)  # minutes 2 and 3 had no events; closed through 250 s
    assert added.closed == [(int(T0) + 60, 2), (int(T0) + 120, 0), (int(T0) + 180, 0)]
    assert w.add(T0 + 2 * 24 * 3600).closed[0] == (int(T0) + 240, 1)  # a 2-day silence: at most a day of zeros
    assert len(w.add(T0 + 2 * 24 * 3600 + 1).closed) == 0


def test_late_events_within_grace_count_in_their_own_minute() -> None:
    w = MinuteWindows(grace=60)
    w.add(T0 + 70)
    added = w.add(T0 + 30)  # 40 s late, minute 0 still open
    assert not added.late and added.minute == int(T0) and added.count == 1


def test_windows_round_trip_and_rolling_totals() -> None:
    w = MinuteWindows(grace=0, keep=3)
    for m in range(5):
        for _ in range(m + 1):
            w.add(T0 + m * 60 + 1)
    w2 = MinuteWindows.from_dict(orjson.loads(orjson.dumps(w.to_dict())), grace=0, keep=3)
    assert w2 == w
    assert w2.recent_total(3, int(T0) + 4 * 60) == 3 + 4 + 5


# --- spike rule (the seasonal model and its rules: test_seasonal_spikes.py) ----------------

# --- cooldowns -------------------------------------------------------------------

def test_cooldown_is_per_key_and_on_event_time() -> None:
    c = Cooldowns()
    assert c.allow("a", 1000, 300)
    assert not c.allow("a", 1200, 300) and c.allow("b", 1200, 300)
    assert not c.allow("a", 900, 300)  # an older event does not reopen it
    assert c.allow("a", 1300, 300)


# --- issues ---------------------------------------------------------------------

def _run(det: IssueDetector, events: list[Signal], status: dict | None = None,
         state: IssueState | None = None) -> tuple[IssueState, list]:
    out = []
    for e in events:
        state, alerts = det.observe(state, e, status)
        out.extend(alerts)
    assert state is not None
    return state, out


def test_new_issue_then_thresholds_each_once() -> None:
    det = IssueDetector(DetectionConfig())
    state, out = _run(det, [sig(T0 + i) for i in range(150)])
    assert [(a.kind, a.details.get("threshold")) for a in out] == [("new_issue", None), ("threshold", 10),
                                                                   ("threshold", 100)]
    # state reloaded from its JSON form (as after a restart) knows all of that
    reloaded = det.load(orjson.loads(orjson.dumps(state.to_dict())))
    _, again = _run(det, [sig(T0 + 200 + i) for i in range(50)], state=reloaded)
    assert again == []


def test_alert_identity_is_deterministic() -> None:
    det = IssueDetector(DetectionConfig())
    e = sig(T0)
    _, a = _run(det, [e])
    _, b = _run(det, [e])
    assert a[0] == b[0]  # same id, same created_at (the event's receive time): a replay is recognisable


def test_several_marks_crossed_at_once_alert_the_highest() -> None:
    det = IssueDetector(DetectionConfig(thresholds=(1, 2, 3)))
    state = IssueState(first_seen=T0, count=2)
    _, out = _run(det, [sig(T0)], state=state)
    assert [a.details["threshold"] for a in out] == [3]


def test_ignored_issue_is_silent_and_does_not_fire_later() -> None:
    det = IssueDetector(DetectionConfig())
    ignored = {"status": "ignored", "changed_at": "2026-11-23T11:00:00Z"}
    state, out = _run(det, [sig(T0 + i) for i in range(20)], ignored)
    assert out == []
    _, out = _run(det, [sig(T0 + 30)], None, state)
    assert out == []  # un-ignored: the 10-events mark and the first event are history, not news


def test_regression_once_per_resolution_and_only_for_events_received_after_it() -> None:
    det = IssueDetector(DetectionConfig(cooldown=60))
    state, _ = _run(det, [sig(T0)])
    resolved = {"status": "resolved", "changed_at": datetime.fromtimestamp(T0 + 100, UTC).isoformat(),
                "changed_by": "bob"}
    state, out = _run(det, [sig(T0 + 50, received=T0 + 99)], resolved, state)
    assert out == []  # received before the resolution
    state, out = _run(det, [sig(T0 + 101 + i) for i in range(5)], resolved, state)
    assert [a.kind for a in out] == ["regression"] and out[0].details["resolved_by"] == "bob"
    first_id = out[0].alert_id
    again = dict(resolved, changed_at=datetime.fromtimestamp(T0 + 500, UTC).isoformat())
    _, out = _run(det, [sig(T0 + 501)], again, state)
    assert [a.kind for a in out] == ["regression"] and out[0].alert_id != first_id  # a new resolution


def test_n_events_in_m_minutes_respects_the_cooldown() -> None:
    det = IssueDetector(DetectionConfig(rate_count=30, rate_minutes=2, cooldown=600, thresholds=()))
    events = [sig(T0 + i * 2) for i in range(200)]  # 30 events/min for 400 s
    _, out = _run(det, events)
    rates = [a for a in out if a.dedup_key.startswith("threshold_rate")]
    assert len(rates) == 1 and rates[0].details["count"] >= 30


def test_issue_spikes_are_opt_in() -> None:
    steady = [sig(T0 + i * 3) for i in range(20 * 12)]  # 20/min for 12 minutes
    burst = [sig(T0 + 12 * 60 + i * 0.2) for i in range(200)]
    off = IssueDetector(DetectionConfig(thresholds=()))
    assert [a.kind for a in _run(off, steady + burst)[1]] == ["new_issue"]
    on = IssueDetector(DetectionConfig(thresholds=(), issue_spikes=True))
    assert [a.kind for a in _run(on, steady + burst)[1]] == ["new_issue", "spike"]


# --- services ---------------------------------------------------------------------

def test_service_spike_names_the_issue_that_burst() -> None:
    det = ServiceDetector(DetectionConfig())
    state: ServiceState | None = None
    out = []
    for i in range(20 * 12):
        state, a = det.observe(state, sig(T0 + i * 3, fp=f"{i % 4:032x}"))
        out += a
    state, a = det.observe(state, sig(T0 + 12 * 60, fp="f" * 32), 150)  # a per-batch count, as forwarded
    out += a
    assert len(out) == 1 and out[0].details["top_fingerprints"][0] == {"fingerprint": "f" * 32, "count": 150}
    assert out[0].dedup_key == "spike:service:billing"


# --- chains -----------------------------------------------------------------------

def test_chain_root_is_earliest_and_ties_go_to_the_deepest_span() -> None:
    chain = ChainState(trace_id="ab" * 8)
    same = T0 + 1
    assert chain.add(sig(same, service="web", span="a" * 16), 5)
    assert chain.add(sig(same, service="api", span="b" * 16, parent="a" * 16), 5)
    assert chain.add(sig(same, service="db", span="c" * 16, parent="b" * 16), 5)
    record = chain.record()
    assert record.root_service == "db" and record.services == ["db", "api", "web"]
    chain2 = ChainState(trace_id="cd" * 8)
    chain2.add(sig(T0 + 2, service="web"), 5)
    chain2.add(sig(T0, service="db"), 5)
    assert chain2.record().root_service == "db"


def test_chain_window_duplicates_and_round_trip() -> None:
    chain = ChainState(trace_id="ab" * 8)
    first = sig(T0, service="db")
    assert chain.add(first, 2) and not chain.add(first, 2)  # redelivery
    assert not chain.add(sig(T0 + 10, service="web"), 2) and chain.dropped == 1
    again = ChainState.from_dict(orjson.loads(orjson.dumps(chain.to_dict())))
    assert again.record(datetime(2026, 1, 1, tzinfo=UTC)) == chain.record(datetime(2026, 1, 1, tzinfo=UTC))


def test_a_reloaded_chain_still_knows_its_errors_window_and_services() -> None:
    chain = ChainState(trace_id="ab" * 8)
    first = sig(T0, service="db")
    chain.add(first, 5)
    chain.add(sig(T0 + 4, service="api"), 5)
    again = ChainState.from_dict(orjson.loads(orjson.dumps(chain.to_dict())))
    assert again.service_count() == 2
    assert not again.add(first, 5) and again.dropped == 0  # redelivered after a restart: not counted twice
    assert not again.add(sig(T0 + 5.5, service="web"), 5) and again.dropped == 1  # more than 5 s after the first
    assert again.add(sig(T0 - 1, service="web"), 5) and again.service_count() == 3
    assert not again.add(sig(T0 + 4.5, service="web"), 5)  # the window now starts a second earlier


def test_one_trace_id_on_every_event_keeps_one_bounded_chain() -> None:
    chain = ChainState(trace_id="ab" * 8)
    for i in range(20_000):
        chain.add(sig(T0 + i / 10_000, service=f"s{i % 7}"), 5)
    assert len(chain.events) == MAX_CHAIN_EVENTS and chain.dropped == 20_000 - MAX_CHAIN_EVENTS
    assert chain.service_count() == 7


def test_chain_record_fields_are_the_error_chains_columns() -> None:
    sql = (Path(__file__).parents[2] / "sinks/clickhouse/migrations/0002_detection.sql").read_text()
    body = sql.split("CREATE TABLE IF NOT EXISTS {db}.error_chains")[1].split("ENGINE")[0]
    columns = re.findall(r"^\s{4}(\w+)\s", body, flags=re.MULTILINE)
    assert list(ErrorChain.model_fields) == columns
    nested = re.findall(r"^\s{8}(\w+)\s", body, flags=re.MULTILINE)
    assert nested == ["event_id", "service", "fingerprint", "title", "timestamp"]


# --- signals ---------------------------------------------------------------------

def test_signal_from_a_processed_event_and_a_clock_far_ahead() -> None:
    received = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    ev = ErrorEvent(service="billing", message="x", trace_id="ab" * 16, timestamp=received - timedelta(seconds=5))
    p = ProcessedEvent(event=ev, fingerprint=FP, title="x", received_at=received)
    s = Signal.from_processed(p.model_dump_json().encode())
    assert s.ts == received.timestamp() - 5 and s.trace_id == "ab" * 16 and s.event_id == str(ev.event_id)
    assert Signal.loads(s.dumps()) == s
    ahead = p.model_copy(update={"event": ev.model_copy(update={"timestamp": received + timedelta(days=1)})})
    assert Signal.from_processed(ahead.model_dump_json().encode()).ts == received.timestamp()
    with pytest.raises((ValueError, KeyError)):
        Signal.from_processed(b'{"event": {}}')


# --- replays (idempotent state) -------------------------------------------------

def _from(s: Signal, partition: int, offset: int) -> Signal:
    s.src_partition, s.src_offset = partition, offset
    return s


def test_an_issue_state_counts_a_replayed_errors_record_once_and_raises_nothing_again() -> None:
    det = IssueDetector(DetectionConfig(thresholds=(3,)))
    first = [_from(sig(T0 + i), partition=i % 2, offset=i // 2) for i in range(4)]
    state, raised = None, []
    for s in first[:3]:
        state, alerts = det.observe(state, s, None)
        raised += alerts
    assert state is not None and state.count == 3
    assert sorted(a.kind for a in raised) == ["new_issue", "threshold"]
    # the processing stage re-processes the batch, then goes on: only the new record counts
    state = det.load(orjson.loads(orjson.dumps(state.to_dict())))  # and through a restart
    for s in [*first[:3], first[3]]:
        assert state is not None
        state, alerts = det.observe(state, Signal(*s.fields()), None)
        assert alerts == []
    assert state is not None and state.count == 4
    assert state.replayed(first[3]) and not state.replayed(_from(sig(T0), partition=1, offset=2))


def test_a_service_state_applies_a_forwarded_bundle_once() -> None:
    det = ServiceDetector(DetectionConfig())
    groups = [(sig(T0 + 1), 5), (sig(T0 + 2, fp="f" * 32), 2)]
    state, _ = det.observe_bundle(None, 3, 40, groups)
    state, _ = det.observe_bundle(state, 3, 40, groups)  # re-forwarded after a crash of detect-issues
    state, _ = det.observe_bundle(state, 3, 39, groups)  # an older bundle of the same partition
    assert state is not None and state.windows.open == {int(T0): 7}
    state, _ = det.observe_bundle(state, 1, 39, groups)  # another by-fingerprint partition
    assert state is not None
    state = det.load(state.to_dict())
    assert state is not None and state.windows.open == {int(T0): 14} and state.applied.high == {"3": 40, "1": 39}


# --- ignore "until", resolve "in the next release" ---------------------------

def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def test_an_ignore_until_a_time_lifts_at_that_event_time() -> None:
    det = IssueDetector(DetectionConfig(thresholds=(5, 10), cooldown=0))
    state, _ = _run(det, [sig(T0)])
    ignored = {"status": "ignored", "changed_at": _iso(T0 + 1), "ignore_until": _iso(T0 + 600)}
    state, out = _run(det, [sig(T0 + 10 + i) for i in range(5)], ignored, state)
    assert out == []  # the 5-events mark falls inside the ignore
    state, out = _run(det, [sig(T0 + 600 + i) for i in range(5)], ignored, state)
    assert [a.details["threshold"] for a in out if a.kind == "threshold"] == [10]


def test_an_ignore_until_n_more_events_counts_from_detections_count_when_it_arrived() -> None:
    det = IssueDetector(DetectionConfig(thresholds=(12,), cooldown=0))
    state, _ = _run(det, [sig(T0 + i) for i in range(8)])
    ignored = {"status": "ignored", "changed_at": _iso(T0 + 9), "ignore_until_events": 4, "detect_count": 8,
               "ignore_events_baseline": 0}
    state, out = _run(det, [sig(T0 + 10 + i) for i in range(3)], ignored, state)
    assert out == [] and silenced(state, sig(T0 + 13), ignored)  # 3 more: still ignored
    state, out = _run(det, [sig(T0 + 20)], ignored, state)  # the 4th more: back to alerting
    assert [a.details["threshold"] for a in out] == [12]
    assert not silenced(state, sig(T0 + 21), ignored)


def test_an_ignore_without_conditions_holds_and_a_count_ignore_without_detect_count_uses_the_baseline() -> None:
    det = IssueDetector(DetectionConfig())
    state, _ = _run(det, [sig(T0 + i) for i in range(50)])
    assert silenced(state, sig(T0 + 99_999), {"status": "ignored", "changed_at": _iso(T0)})
    older = {"status": "ignored", "changed_at": _iso(T0), "ignore_until_events": 10, "ignore_events_baseline": 45}
    assert silenced(state, sig(T0 + 60), older)  # 50 - 45 < 10
    assert not silenced(state, sig(T0 + 60), {**older, "ignore_events_baseline": 40})


def test_a_resolution_in_the_next_release_regresses_only_for_another_release() -> None:
    det = IssueDetector(DetectionConfig(cooldown=0))
    state, _ = _run(det, [sig(T0)])
    resolved = {"status": "resolved", "changed_at": _iso(T0 + 100), "changed_by": "bob",
                "resolved_in_next_release": True, "resolved_releases": ["1.0", "1.1"]}
    old = [sig(T0 + 200), sig(T0 + 201)]
    old[0].release, old[1].release = "1.0", "1.1"
    state, out = _run(det, old, resolved, state)
    assert out == []  # the releases it was resolved in
    newer = sig(T0 + 300)
    newer.release = "1.2"
    state, out = _run(det, [newer], resolved, state)
    assert [a.kind for a in out] == ["regression"]
    plain = {**resolved, "resolved_in_next_release": False, "changed_at": _iso(T0 + 400)}
    again = sig(T0 + 500)
    again.release = "1.0"
    _, out = _run(det, [again], plain, state)
    assert [a.kind for a in out] == ["regression"]  # a plain resolution: any release regresses


def test_the_status_table_keeps_detections_count_when_an_ignore_arrives() -> None:
    fp = "ab" * 16
    ignore = IssueStatusChange(fingerprint=fp, status="ignored", action="status", ignore_until_events=5,
                               ignore_events_baseline=90)
    kept = kept_status(ignore, None, {"n": 7})
    assert kept["detect_count"] == 7 and kept["ignore_until_events"] == 5
    assign = ignore.model_copy(update={"action": "assign", "assignee": "ana"})
    assert kept_status(assign, kept, {"n": 30})["detect_count"] == 7  # carried forward, not restarted
    assert kept_status(ignore, kept, {"n": 30})["detect_count"] == 30  # a new ignore starts again
    assert "detect_count" not in kept_status(ignore.model_copy(update={"status": "new"}), kept, {"n": 30})
    assert kept_status(ignore, None, None)["detect_count"] == 0  # an issue detection has not seen yet


# --- merged issues ---------------------------------------------------------------

PRIMARY = "f" * 32


def test_a_merged_fingerprint_raises_no_new_issue_and_alerts_as_its_primary() -> None:
    det = IssueDetector(DetectionConfig(thresholds=(3,)))
    state, out = None, []
    for i in range(3):
        state, alerts = det.observe(state, sig(T0 + i), None, PRIMARY)
        out.extend(alerts)
    assert [(a.kind, a.fingerprint, a.dedup_key) for a in out] == [("threshold", PRIMARY, f"threshold:{PRIMARY}:3")]
    # the primary's own events crossing the same mark raise the very same alert (one alert for the group)
    _, own = _run(det, [sig(T0 + i, fp=PRIMARY) for i in range(3)])
    assert [a.alert_id for a in own if a.kind == "threshold"] == [out[0].alert_id]


def test_a_merged_fingerprint_regresses_as_its_primary_and_alone_again_after_an_unmerge() -> None:
    det = IssueDetector(DetectionConfig(cooldown=0))
    resolved = {"status": "resolved", "changed_at": datetime.fromtimestamp(T0 + 100, UTC).isoformat()}
    member, _ = _run(det, [sig(T0)])
    member, out = det.observe(member, sig(T0 + 101), resolved, PRIMARY)
    primary, own = _run(det, [sig(T0, fp=PRIMARY), sig(T0 + 102, fp=PRIMARY)], resolved)
    regressions = [a for a in own if a.kind == "regression"]
    assert [(a.kind, a.fingerprint) for a in out] == [("regression", PRIMARY)]
    assert [a.alert_id for a in regressions] == [out[0].alert_id]  # the group regresses once
    again = dict(resolved, changed_at=datetime.fromtimestamp(T0 + 200, UTC).isoformat())
    _, out = det.observe(member, sig(T0 + 201), again, None)  # unmerged: its own regression
    assert [(a.kind, a.fingerprint) for a in out] == [("regression", FP)]


def test_an_issue_state_remembers_the_fingerprints_an_upgrade_merged_into_it() -> None:
    """Grouping upgrade: the merge of a new fingerprint is published once, also after a restart."""
    cfg = DetectionConfig()
    state = IssueState(first_seen=1.0, upgraded={"a" * 32})
    again = IssueState.from_dict(orjson.loads(orjson.dumps(state.to_dict())), cfg)
    assert again.upgraded == {"a" * 32}
    assert "u" not in IssueState(first_seen=1.0).to_dict()  # states of issues never upgraded stay as they were
    assert IssueState.from_dict(IssueState(first_seen=1.0).to_dict(), cfg).upgraded == set()


def test_a_forwarded_batch_is_cut_into_records_the_producer_accepts_with_every_item_once_in_order() -> None:
    """12,000 traced events in one agent batch made a 1.1 MB record the producer refused (limit 1 MB)."""
    items = [orjson.dumps([f"{i:032x}", "checkout", "f" * 32, "TimeoutError: " + "x" * (i % 700)])
             for i in range(12_000)]
    records = list(json_arrays(items))
    assert len(records) > 1
    assert all(len(r) <= FORWARD_RECORD_BYTES for r in records)
    assert [x for r in records for x in orjson.loads(r)] == [orjson.loads(i) for i in items]
    huge = orjson.dumps(["y" * (FORWARD_RECORD_BYTES + 10)])
    assert [orjson.loads(r) for r in json_arrays([items[0], huge, items[1]])] == [
        [orjson.loads(items[0])], [orjson.loads(huge)], [orjson.loads(items[1])]]  # too big alone: alone
