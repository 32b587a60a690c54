"""Per-issue detection: new issue, regression, count thresholds, N-in-M, issue spikes, escalating issues.

One ``IssueState`` per fingerprint, owned by the partition of that fingerprint,
so "first event ever" is a question about one table value on one worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.alerts import AlertEvent, Severity
from schemas.issue_status import ESCALATION_DETECTOR, IssueStatusChange
from stream_processors.detection_rules.alerts import human_utc, make_alert, utc
from stream_processors.detection_rules.config import DetectionConfig
from stream_processors.detection_rules.cooldown import Cooldowns
from stream_processors.detection_rules.escalating import (
    WEEKDAYS,
    EscalationWatch,
    ceiling_at,
    until_escalating,
    weekday,
)
from stream_processors.detection_rules.replay import AppliedOffsets
from stream_processors.detection_rules.spikes import Baseline, RiseHit, SpikeHit, check_spike
from stream_processors.detection_rules.windows import MinuteWindows
from stream_processors.detection_signals import Signal


@dataclass(slots=True)
class IssueState:
    first_seen: float
    count: int = 0
    next_threshold: int = 0  # index into the configured thresholds
    regressed_for: str | None = None  # changed_at of the resolution this issue already regressed from
    cooldowns: Cooldowns = field(default_factory=Cooldowns)
    windows: MinuteWindows = field(default_factory=MinuteWindows)
    baseline: Baseline = field(default_factory=Baseline)
    spiked: set[int] = field(default_factory=set)  # minutes that already raised a spike
    late: int = 0  # events beyond grace, ignored by the windows
    applied: AppliedOffsets = field(default_factory=AppliedOffsets)  # ``errors`` positions already counted
    # fingerprints of a newer grouping version already merged into this issue (docs/grouping.md)
    upgraded: set[str] = field(default_factory=set)
    # while archived until escalating: its events in a sliding hour (detection_rules/escalating.py)
    escalation: EscalationWatch | None = None

    def replayed(self, sig: Signal) -> bool:
        """True when ``sig`` is an event this state already counted (its ``errors`` record re-processed)."""
        return self.applied.seen(sig.src_partition, sig.src_offset)

    def to_dict(self) -> dict[str, Any]:
        return {"f": self.first_seen, "n": self.count, "t": self.next_threshold, "r": self.regressed_for,
                "cd": self.cooldowns.last, "w": self.windows.to_dict(), "b": self.baseline.to_dict(),
                "s": sorted(self.spiked), "l": self.late, "a": self.applied.high,
                **({"u": sorted(self.upgraded)} if self.upgraded else {}),
                **({"x": self.escalation.to_list()} if self.escalation is not None else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any], cfg: DetectionConfig) -> IssueState:
        return cls(first_seen=d["f"], count=d["n"], next_threshold=d["t"], regressed_for=d.get("r"),
                   cooldowns=Cooldowns(dict(d.get("cd", {}))),
                   windows=MinuteWindows.from_dict(d.get("w", {}), cfg.grace, cfg.rate_minutes),
                   baseline=Baseline.from_dict(d.get("b", {})), spiked=set(d.get("s", [])), late=d.get("l", 0),
                   applied=AppliedOffsets(dict(d.get("a", {}))), upgraded=set(d.get("u", [])),
                   escalation=EscalationWatch.from_list(d["x"]) if d.get("x") else None)


def silenced(state: IssueState, sig: Signal, status: dict[str, Any] | None) -> bool:
    """True while an ignore holds for ``sig``: the issue raises no alerts and takes no part in service detection.

    An ignore "until" lifts on its own, as the issue stream shows it (``reports/issue_queries/``): once the
    event's time reaches ``ignore_until``, or once the issue has ``ignore_until_events`` more events than
    when the ignore arrived. That baseline is detection's own count at that moment (``detect_count``, which
    ``track-issue-status`` adds to the status it keeps); a status kept before it existed falls back to
    ``ignore_events_baseline``, ClickHouse's count when the ignore was published.

    An archive "until escalating" lifts when detection finds the issue escalating (``escalate``): from that
    moment, before its own ``escalating`` status has come back on the status topic.
    """
    if status is None or status.get("status") != "ignored":
        return False
    watch = state.escalation  # (a new archive has replaced an escalated watch before this is asked)
    if watch is not None and watch.escalated and until_escalating(status):
        return False
    until = status.get("ignore_until")
    if until and sig.ts >= datetime.fromisoformat(str(until)).timestamp():
        return False
    more = status.get("ignore_until_events")
    if more:
        baseline = status.get("detect_count")
        if baseline is None:
            baseline = status.get("ignore_events_baseline") or 0
        if state.count - int(baseline) >= int(more):
            return False
    return True


def _count_severity(n: int) -> Severity:
    return "info" if n < 100 else "warning" if n < 10_000 else "error"


class IssueDetector:
    def __init__(self, cfg: DetectionConfig):
        self.cfg = cfg

    def load(self, value: Any) -> IssueState | None:
        if value is None:
            return None
        return IssueState.from_dict(value, self.cfg)

    def observe(self, state: IssueState | None, sig: Signal, status: dict[str, Any] | None,
                primary: str | None = None) -> tuple[IssueState, list[AlertEvent]]:
        """Fold one event into its fingerprint's state; the alerts it raises (none for ignored issues).

        An event the state already counted (``state.replayed(sig)``) changes nothing and raises nothing.
        ``primary``: the issue ``sig``'s fingerprint is merged into. Its events are not a new issue, and
        its alerts are the primary's (its fingerprint, dedup key and identity), so the group raises each
        alert once whichever member's events raise it.
        """
        cfg = self.cfg
        fp = primary or sig.fingerprint
        new = state is None
        if state is None:
            state = IssueState(first_seen=sig.ts, windows=MinuteWindows(grace=cfg.grace, keep=cfg.rate_minutes))
        elif state.replayed(sig):
            return state, []
        state.applied.record(sig.src_partition, sig.src_offset)
        state.count += 1
        if until_escalating(status):
            self._watch(state, status, sig.ts)
        raised: list[AlertEvent] = []
        if new and not primary:
            raised.append(make_alert(
                "new_issue", "error" if sig.level == "critical" else "warning", f"new_issue:{fp}", (fp,), sig,
                f"New issue in {sig.service}: {sig.title}", f"First seen at {human_utc(sig.ts)}",
                fingerprint=fp, details={"level": sig.level},
            ))
        regression = self._regression(state, sig, status, fp)
        if regression is not None:
            raised.append(regression)
        raised.extend(self._thresholds(state, sig, fp))
        added = state.windows.add(sig.ts)
        if added.late:
            state.late += 1
        else:
            raised.extend(self._rate(state, sig, added.minute, fp))
            if cfg.issue_spikes:  # the baseline is only for issue spikes (the service scope keeps its own)
                for minute, count in added.closed:
                    state.baseline.fold(minute, count, cfg.spike)
                hit = check_spike(cfg.spike, state.baseline, added.minute, added.count, state.spiked)
                if hit is not None:
                    state.spiked = {m for m in state.spiked if m >= added.minute - 3_600}
                    raised.append(spike_alert(f"spike:issue:{fp}", hit, sig, f"issue {sig.title}", fingerprint=fp))
        if silenced(state, sig, status):
            return state, []
        return state, [a for a in raised if state.cooldowns.allow(a.dedup_key, sig.ts, cfg.cooldown)]

    @staticmethod
    def _watch(state: IssueState, status: dict[str, Any], ts: float) -> None:
        """Count an event of an issue archived until escalating (O(1), nothing allocated per event). A new
        archive starts a new watch; a change that only carries the archive forward (an assignment, a note)
        keeps the one it had."""
        watch = state.escalation
        at = str(status.get("changed_at"))
        if watch is None or (watch.archived_at != at and status.get("action") in ("", "status")):
            watch = state.escalation = EscalationWatch(archived_at=at)
        if not watch.escalated:
            watch.add(ts)

    def escalate(self, state: IssueState, own: str, sig: Signal, status: dict[str, Any] | None,
                 primary: str | None = None) -> tuple[AlertEvent, list[IssueStatusChange]] | None:
        """The check, once per bundle for an issue archived until escalating: its last hour's events against
        the forecast's ceiling for the day. Above it (once per archive): an ``escalating`` alert, and the
        status change that puts the issue back in the stream. ``sig``: the issue's newest event of the bundle
        (the trigger); everything is derived from it and the state, so a replayed bundle gives the same.
        ``own``: the fingerprint whose state and status these are; a merged one's group (``primary``) comes
        back with it."""
        watch = state.escalation
        if watch is None or watch.escalated or not until_escalating(status) or watch.hour < 0:
            return None
        assert status is not None
        rule = self.cfg.escalating
        ceiling = ceiling_at(status.get("escalating_forecast") or [], watch.last, rule)
        seen = watch.last_hour()
        if seen <= ceiling:
            return None
        watch.escalated = True
        fp = primary or sig.fingerprint
        archived_at = watch.archived_at  # the archive's own time (an assignment may have been recorded since)
        archived_by = status.get("changed_by") or "unknown"
        day = WEEKDAYS[weekday(watch.last)]
        n = math.ceil(seen)  # above the ceiling, as the text says
        alert = make_alert(
            "escalating", "error", f"escalating:{fp}", (fp, archived_at), sig,
            f"Escalating in {sig.service}: {sig.title}",
            f"{n:,} events in the last hour to {human_utc(watch.last)}, expected at most {ceiling:,} an hour on "
            f"a {day} (its forecast); archived until escalating at {human_utc(archived_at)} by {archived_by}. "
            "It is back in the issue stream.",
            fingerprint=fp,
            details={"seen": n, "expected": ceiling, "window_end": utc(watch.last).isoformat(), "weekday": day,
                     "forecast": list(status.get("escalating_forecast") or []), "archived_at": archived_at,
                     "archived_by": archived_by},
        )
        # the issue is back: after the latest record it lifts (changed_at decides the latest one in ClickHouse)
        at = max(utc(sig.received), datetime.fromisoformat(str(status.get("changed_at"))) + timedelta(milliseconds=1))
        note = f"escalating: {n:,} events in an hour, forecast at most {ceiling:,}"
        changes = [IssueStatusChange(fingerprint=f, status="escalating", action="escalating", changed_at=at,
                                     changed_by=ESCALATION_DETECTOR, note=note, assignee=status.get("assignee") or "")
                   for f in dict.fromkeys((own, fp))]
        return alert, changes

    def _regression(self, state: IssueState, sig: Signal, status: dict[str, Any] | None, fp: str
                    ) -> AlertEvent | None:
        if status is None or status.get("status") != "resolved":
            return None
        changed = str(status.get("changed_at"))
        if state.regressed_for == changed or sig.received <= datetime.fromisoformat(changed).timestamp():
            return None
        if status.get("resolved_in_next_release") and sig.release in (status.get("resolved_releases") or []):
            return None  # resolved "in the next release": the releases it was resolved in do not regress it
        state.regressed_for = changed  # regressed: later events of this resolution raise nothing
        return make_alert(
            "regression", "error", f"regression:{fp}", (fp, changed), sig,
            f"Regression in {sig.service}: {sig.title}",
            f"Resolved at {human_utc(changed)} by {status.get('changed_by') or 'unknown'}, "
            f"seen again at {human_utc(sig.ts)}",
            fingerprint=fp, details={"resolved_at": changed, "resolved_by": status.get("changed_by", ""),
                                     "note": status.get("note", "")},
        )

    def _thresholds(self, state: IssueState, sig: Signal, fp: str) -> list[AlertEvent]:
        marks = self.cfg.thresholds
        crossed = None
        while state.next_threshold < len(marks) and state.count >= marks[state.next_threshold]:
            crossed = marks[state.next_threshold]
            state.next_threshold += 1
        if crossed is None:
            return []
        return [make_alert(
            "threshold", _count_severity(crossed), f"threshold:{fp}:{crossed}", (fp, crossed), sig,
            f"{sig.title} reached {crossed:,} events", f"{state.count:,} events since {human_utc(state.first_seen)}",
            fingerprint=fp, details={"threshold": crossed, "count": state.count},
        )]

    def _rate(self, state: IssueState, sig: Signal, minute: int, fp: str) -> list[AlertEvent]:
        cfg = self.cfg
        if cfg.rate_count <= 0:
            return []
        total = state.windows.recent_total(cfg.rate_minutes, minute)
        if total < cfg.rate_count:
            return []
        key = f"threshold_rate:{fp}"
        if key in state.cooldowns.last and sig.ts - state.cooldowns.last[key] < cfg.cooldown:
            return []  # quietly: checked here too so a long burst does not build one alert per event
        return [make_alert(
            "threshold", "warning", key, (fp, minute), sig,
            f"{sig.title}: {total:,} events in {cfg.rate_minutes} min",
            f"at least {cfg.rate_count:,} events in {cfg.rate_minutes} minutes (event time)",
            fingerprint=fp, details={"count": total, "minutes": cfg.rate_minutes, "limit": cfg.rate_count,
                                     "window_end": utc(minute + 60).isoformat()},
        )]


def spike_alert(dedup_key: str, hit: SpikeHit, sig: Signal, what: str, *, fingerprint: str | None = None,
                details: dict[str, Any] | None = None) -> AlertEvent:
    """A burst: one minute far above its expected count."""
    return make_alert(
        "spike", "critical" if hit.ratio >= 10 else "error", dedup_key, (hit.minute,), sig,
        f"Burst in {sig.service}: {hit.count:,} errors/min, expected {hit.baseline:.1f}",
        f"{what}: {hit.count:,} events in the minute from {human_utc(hit.minute)}, "
        f"expected {hit.baseline:.1f} for this time of day ({hit.ratio:.1f}×, threshold {hit.threshold:.0f})",
        fingerprint=fingerprint,
        details={"pattern": "burst", "window_start": utc(hit.minute).isoformat(), "count": hit.count,
                 "baseline": round(hit.baseline, 3), "expected": round(hit.baseline, 3),
                 "threshold": round(hit.threshold, 3), "ratio": round(hit.ratio, 2), **(details or {})},
    )


def rise_alert(dedup_key: str, hit: RiseHit, sig: Signal, what: str, *, fingerprint: str | None = None,
               details: dict[str, Any] | None = None) -> AlertEvent:
    """A sustained rise: several minutes together far above their expected total."""
    per_min, expected_per_min = hit.count / hit.minutes, hit.expected / hit.minutes
    return make_alert(
        "spike", "critical" if hit.ratio >= 10 else "error", dedup_key, ("rise", hit.since), sig,
        f"Sustained rise in {sig.service}: {per_min:,.0f} errors/min for {hit.minutes} min, "
        f"expected {expected_per_min:.1f}",
        f"{what}: {hit.count:,} events in the {hit.minutes} minutes to {human_utc(hit.minute + 60)}, "
        f"expected {hit.expected:.0f} ({hit.ratio:.1f}×, threshold {hit.threshold:.0f}); "
        f"above normal since {human_utc(hit.since)}",
        fingerprint=fingerprint,
        details={"pattern": "sustained", "since": utc(hit.since).isoformat(),
                 "window_start": utc(hit.minute - 60 * (hit.minutes - 1)).isoformat(),
                 "window_end": utc(hit.minute + 60).isoformat(), "minutes": hit.minutes, "count": hit.count,
                 "expected": round(hit.expected, 3), "threshold": round(hit.threshold, 3),
                 "ratio": round(hit.ratio, 2), **(details or {})},
    )
