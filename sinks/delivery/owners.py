"""Who owns an alert's issue, set on the alert before the alerts sink stores and delivers it.

The owner is the issue's current assignee (``issue_status``), else the owner the first
matching ownership rule names (``ERRSTREAM_OWNERSHIP_RULES``, ``errstream_core.ownership``).
Rules about paths, modules or tags need the alert's trigger event: it is read from
``error_events`` by its sort key (service, fingerprint, time). A new issue's first event may
be stored a moment after its alert, so for ``new_issue`` alerts the sink waits for it, at most
``FACTS_WAIT_SECONDS`` per poll; after that the rules see the service alone. The web app assigns
new issues by the same rules, so the owner in the payload and the assignee it publishes agree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from errstream_core.ownership import IssueFacts, owner_for
from schemas.alerts import AlertEvent
from schemas.ownership import OwnershipRule

FACTS_WAIT_SECONDS = 5.0
_RETRY_SECONDS = 0.5


class AlertOwners:
    def __init__(self, client: Client, db: str, rules: list[OwnershipRule]) -> None:
        self.client, self.db, self.rules = client, db, rules
        self.need_event = any(r.kind != "service" for r in rules)

    def resolve(self, alerts: Sequence[AlertEvent]) -> dict[str, str]:
        """alert id → owner, for the alerts of an issue that has one (blocking: run it in a thread)."""
        fps = sorted({a.fingerprint for a in alerts if a.fingerprint})
        if not fps:
            return {}
        assignees = self._assignees(fps)
        out: dict[str, str] = {}
        todo = []
        for a in alerts:
            if not a.fingerprint:
                continue
            if assignees.get(a.fingerprint):
                out[str(a.alert_id)] = assignees[a.fingerprint]
            elif self.rules:
                todo.append(a)
        deadline = time.monotonic() + FACTS_WAIT_SECONDS
        for a in todo:
            owner = owner_for(self.rules, self._facts(a, deadline))
            if owner is not None:
                out[str(a.alert_id)] = owner
        return out

    def _assignees(self, fps: list[str]) -> dict[str, str]:
        rows = self.client.query(
            f"SELECT fingerprint, assignee FROM {self.db}.issue_status FINAL WHERE fingerprint IN {{fps:Array(String)}}",
            parameters={"fps": fps}).result_rows
        return {fp: assignee for fp, assignee in rows}

    def _facts(self, alert: AlertEvent, deadline: float) -> IssueFacts:
        facts = IssueFacts(service=alert.service)
        if not self.need_event or alert.trigger_event_id is None:
            return facts
        while True:
            row = self._trigger_event(alert)
            if row is not None or alert.kind != "new_issue" or time.monotonic() >= deadline:
                break
            time.sleep(_RETRY_SECONDS)
        if row is not None:
            tags, exceptions = row
            facts.tags = dict(tags)
            for exc in _json_list(exceptions):
                frames = exc.get("stacktrace") if isinstance(exc, dict) else None
                for fr in frames if isinstance(frames, list) else []:
                    if not isinstance(fr, dict):
                        continue
                    facts.paths += [str(p) for p in (fr.get("filename"), fr.get("abs_path")) if p]
                    if fr.get("module"):
                        facts.modules.append(str(fr["module"]))
        return facts

    def _trigger_event(self, alert: AlertEvent) -> tuple[Any, Any] | None:
        # service and fingerprint are the table's sort-key prefix: the event id alone would scan the table
        params = {"svc": alert.service, "fp": alert.fingerprint, "id": str(alert.trigger_event_id)}
        rows = self.client.query(
            f"SELECT tags, exceptions FROM {self.db}.error_events WHERE service = {{svc:String}}"
            " AND fingerprint = {fp:String} AND event_id = {id:UUID} LIMIT 1", parameters=params,
        ).result_rows
        return (rows[0][0], rows[0][1]) if rows else None


def _json_list(raw: Any) -> list[Any]:
    try:
        value = orjson.loads(raw) if raw else []
    except orjson.JSONDecodeError:
        return []
    return value if isinstance(value, list) else []


def with_owners(alerts: Sequence[AlertEvent], owners: dict[str, str]) -> list[AlertEvent]:
    return [a.model_copy(update={"owner": owners[str(a.alert_id)]}) if str(a.alert_id) in owners and not a.owner
            else a for a in alerts]
