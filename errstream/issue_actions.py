"""What an action on issues publishes: resolve, ignore, archive, acknowledge, investigate, reopen, assign, note.

``archive`` is an ignore "until escalating" (Sentry's archive): the record carries the issue's escalating
forecast, computed here from its last 7 days (``history``: ``reports.issues.escalating_history``), and
detection puts the issue back in the stream when its volume beats it (docs/detection.md#escalating-issues).

Merge and unmerge are actions of the same request (the web app's bulk bar and the CLI share it), but they
publish to the merge topic instead: ``errstream.issue_merges`` plans them.

The status topic is compacted by fingerprint, so each change carries the issue's
whole workflow state: the action's own fields plus, carried forward from the
latest record (``reports.issues.workflow_state``), what it does not change — an
assignment keeps the status, a resolution keeps the assignee. The web app's
actions (single and bulk) and ``errstream issue assign`` go through here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from errstream_core.settings import Settings
from schemas.issue_status import IssueStatus, IssueStatusChange
from stream_processors.detection_rules.escalating import EscalatingRule, forecast

Action = Literal["resolve", "ignore", "archive", "acknowledge", "investigate", "reopen", "assign", "unassign", "note",
                 "merge", "unmerge"]
MERGE_ACTIONS = ("merge", "unmerge")
STATUS_OF: dict[str, IssueStatus] = {
    "resolve": "resolved", "ignore": "ignored", "archive": "ignored", "acknowledge": "acknowledged",
    "investigate": "investigating", "reopen": "new",
}
IGNORE_CONDITIONS = ("ignore_until", "ignore_until_events", "ignore_events_baseline", "ignore_until_escalating",
                     "escalating_forecast")
MAX_BULK = 500
_FP = re.compile(r"[0-9a-f]{32}")


class ActionRequest(BaseModel):
    """One action over one or more issues (a bulk action is the same request with more fingerprints)."""

    action: Action
    fingerprints: list[str] = Field(min_length=1, max_length=MAX_BULK)
    note: str = Field(default="", max_length=4_000)
    assignee: str = Field(default="", max_length=200)  # for assign
    in_next_release: bool = False  # for resolve: only an event of a newer release is a regression
    ignore_minutes: int | None = Field(default=None, ge=1, le=525_600)  # for ignore: back to open after this
    ignore_until_events: int | None = Field(default=None, ge=1)  # for ignore: back to open after N more events
    until_escalating: bool = False  # for ignore: back once it escalates (what archive does)
    into: str | None = None  # for merge: the primary (default: the first fingerprint)

    @model_validator(mode="after")
    def _check(self) -> ActionRequest:
        self.fingerprints = [f.strip().lower() for f in self.fingerprints]
        if self.into is not None:
            self.into = self.into.strip().lower()
            if self.action != "merge":
                raise ValueError("into is for merge only")
        bad = [f for f in [*self.fingerprints, *([self.into] if self.into is not None else [])]
               if not _FP.fullmatch(f)]
        if bad:
            raise ValueError(f"fingerprints must be 32 hex characters: {', '.join(b[:40] for b in bad[:3])}")
        if self.action == "assign" and not self.assignee.strip():
            raise ValueError("assign needs an assignee")
        if self.action == "note" and not self.note.strip():
            raise ValueError("a note needs text")
        if self.until_escalating and self.action not in ("ignore", "archive"):
            raise ValueError("until_escalating is for ignore and archive only")
        if self.action == "archive":
            self.until_escalating = True
        return self

    @property
    def escalating(self) -> bool:
        """Archives until escalating: the planner needs each issue's history (``escalating_history``)."""
        return self.action in ("ignore", "archive") and self.until_escalating


def escalating_rule(settings: Settings) -> EscalatingRule:
    return EscalatingRule(min_per_hour=settings.escalating_min_per_hour)


def plan_changes(request: ActionRequest, states: dict[str, dict[str, Any]], actor: str,
                 now: datetime | None = None, history: dict[str, dict[str, Any]] | None = None,
                 rule: EscalatingRule | None = None) -> list[IssueStatusChange]:
    """The records to publish for ``request``, one per fingerprint (its validation errors are the caller's 4xx).

    ``history``: for an archive until escalating, each issue's last 7 days (``reports.issues.escalating_history``;
    an issue missing from it gets the minimum ceiling); ``rule``: the forecast's parameters."""
    if request.action in MERGE_ACTIONS:
        raise ValueError("merge and unmerge publish merge records: plan them with errstream.issue_merges")
    now = now or datetime.now(UTC)
    out = []
    for fp in dict.fromkeys(request.fingerprints):  # each issue once, in the given order
        st = states.get(fp) or {"status": "new", "assignee": ""}
        doc: dict[str, Any] = {
            "fingerprint": fp, "changed_at": now, "changed_by": actor, "note": request.note,
            "status": st.get("status") or "new", "assignee": st.get("assignee") or "",
        }
        if st.get("status") == "ignored":  # carried: an assignment does not lift an ignore's conditions
            doc |= {k: st.get(k) for k in IGNORE_CONDITIONS if st.get(k) is not None}
        if st.get("status") == "resolved":
            doc |= {"resolved_in_next_release": bool(st.get("resolved_in_next_release")),
                    "resolved_releases": list(st.get("resolved_releases") or [])}
        a = request.action
        if a in STATUS_OF:
            doc |= {"action": "status", "status": STATUS_OF[a], "ignore_until": None, "ignore_until_events": None,
                    "ignore_events_baseline": None, "resolved_in_next_release": False, "resolved_releases": [],
                    "ignore_until_escalating": False, "escalating_forecast": []}
            if request.escalating:
                h = (history or {}).get(fp) or {"hourly": [], "start_hour": 0, "first_hour": None}
                doc["ignore_until_escalating"] = True
                doc["escalating_forecast"] = forecast(h["hourly"], h["start_hour"], h["first_hour"],
                                                      rule or EscalatingRule())
            if a in ("ignore", "archive"):
                if request.ignore_minutes:
                    doc["ignore_until"] = now + timedelta(minutes=request.ignore_minutes)
                if request.ignore_until_events:
                    doc["ignore_until_events"] = request.ignore_until_events
                    doc["ignore_events_baseline"] = int(st.get("events") or 0)
            if a == "resolve" and request.in_next_release:
                doc["resolved_in_next_release"] = True
                doc["resolved_releases"] = list(st.get("releases") or [])
        elif a == "assign":
            doc |= {"action": "assign", "assignee": request.assignee.strip()}
        elif a == "unassign":
            doc |= {"action": "unassign", "assignee": ""}
        else:
            doc["action"] = "note"
        out.append(IssueStatusChange.model_validate(doc))
    return out
