"""What the web app's routes share: settings, the ClickHouse client, auth, the publishers, live alerts.

Also the one place changes are made: ``apply`` reads the issues' current workflow
state, plans the records (``errstream.issue_actions``), publishes them to the
issue-status topic and remembers them for a short while, so the page that made a
change shows it before the status sink has written it to ClickHouse. A change of
a merged group is published for each of its fingerprints. ``apply_merge`` plans
merges and unmerges (``errstream.issue_merges``) and publishes them to the merge topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from errstream.issue_actions import ActionRequest, escalating_rule, plan_changes
from errstream.issue_merges import for_group, plan_merge, plan_unmerge
from errstream.web.auth import LoginLimiter, Principal, Sessions, TokenStore
from errstream.web.live import AlertFeed
from errstream.web.overview import Fresh
from errstream_core.ownership import IssueFacts, owner_for
from errstream_core.settings import Settings
from producers.issue_status import StatusPublisher
from reports.issue_queries.queries import IssueQueries
from reports.issues import escalating_history, workflow_state
from reports.merges import known_fingerprints, merge_mapping
from schemas.alerts import AlertEvent
from schemas.issue_merge import IssueMergeChange
from schemas.issue_status import IssueStatusChange

log = logging.getLogger("errstream.web")
PENDING_SECONDS = 120.0
PUBLISH_TIMEOUT = 15.0


class Unavailable(Exception):
    """A backing service (Kafka, ClickHouse) is unreachable: the caller gets 503 and the same request may be retried."""


class UnknownIssues(LookupError):
    """Fingerprints that name no issue (no events, no recorded status): the caller's 404, and nothing is published.

    A status record for a fingerprint nobody has seen would create an empty issue in every listing.
    """

    def __init__(self, fingerprints: list[str]) -> None:
        self.fingerprints = fingerprints
        super().__init__(f"no such issue: {', '.join(fingerprints[:20])}"
                         + (f" (and {len(fingerprints) - 20} more)" if len(fingerprints) > 20 else ""))

FACTS_WAIT_SECONDS = 15.0


@dataclass
class WebState:
    settings: Settings
    client_or_none: Any  # clickhouse-connect client (thread-safe: no session id); None = connect on first use
    tokens: TokenStore
    sessions: Sessions
    limiter: LoginLimiter
    publisher: StatusPublisher
    merge_publisher: StatusPublisher
    feed: AlertFeed | None = None
    pulse: Any = None  # errstream.web.pulse.Pulse while the live feed runs
    searches: Any = None  # errstream.web.saved_searches.SavedSearches (per user, beside the tokens file)
    pending: dict[str, tuple[float, IssueStatusChange]] = field(default_factory=dict)
    overview: Fresh[Any] = field(init=False)  # the overview's report and new issues, shared (errstream.web.overview)

    def __post_init__(self) -> None:
        self.overview = Fresh(self.settings.web_overview_refresh_seconds, self.settings.web_overview_max_age_seconds)

    @property
    def client(self) -> Any:
        """The ClickHouse client, connected on first use: the app starts (and answers 503) while ClickHouse is down."""
        if self.client_or_none is None:
            from sinks.clickhouse.client import connect

            self.client_or_none = connect(self.settings)  # raises a ClickHouseError while unreachable
        return self.client_or_none

    @property
    def queries(self) -> IssueQueries:
        return IssueQueries(self.client, self.settings.clickhouse_database)

    async def apply(self, request: ActionRequest, who: Principal, check_known: bool = True) -> list[IssueStatusChange]:
        """Publish the action's records; ``UnknownIssues`` (nothing published) if any fingerprint names no issue:
        none with events or a recorded status in ClickHouse, nor announced by an alert this app has read.

        ``check_known=False`` only for an issue an alert has just announced (its counts may not be stored yet).
        """
        if check_known:
            announced = self.feed.recent_fingerprints if self.feed is not None else {}
            known = await run_in_threadpool(known_fingerprints, self.client, self.settings, request.fingerprints)
            unknown = [fp for fp in dict.fromkeys(request.fingerprints) if fp not in known and fp not in announced]
            if unknown:
                raise UnknownIssues(unknown)
        states = await run_in_threadpool(workflow_state, self.client, self.settings, request.fingerprints)
        for fp, (at, change) in list(self.pending.items()):  # a change not yet in ClickHouse is the latest state
            if fp in request.fingerprints and time.monotonic() - at < PENDING_SECONDS:
                st = states.setdefault(fp, {})
                st.update(change.model_dump(), events=st.get("events", 0), releases=st.get("releases", []))
        mapping = await run_in_threadpool(merge_mapping, self.client, self.settings)
        history = (await run_in_threadpool(escalating_history, self.client, self.settings, request.fingerprints)
                   if request.escalating else None)
        changes = for_group(plan_changes(request, states, who.name, history=history,
                                         rule=escalating_rule(self.settings)), mapping)
        await self._publish(self.publisher, changes)
        now = time.monotonic()
        for c in changes:
            self.pending[c.fingerprint] = (now, c)
            log.info("web: %s %s → %s (%s) by %s", c.fingerprint, c.action, c.status, c.assignee, c.changed_by)
        return changes

    async def _publish(self, publisher: StatusPublisher, records: Any) -> None:
        try:
            await asyncio.wait_for(publisher.publish(records), PUBLISH_TIMEOUT)
        except Exception as exc:
            await publisher.stop()  # start afresh next time
            log.warning("web: could not publish to %s: %s", publisher.topic, exc or type(exc).__name__)
            raise Unavailable("Kafka is not reachable: nothing was changed; try again") from None

    async def apply_merge(self, request: ActionRequest, who: Principal) -> list[IssueMergeChange]:
        """A merge or an unmerge; ``errstream.issue_merges.MergeError`` (the caller's 400) when it cannot be done."""
        mapping = await run_in_threadpool(merge_mapping, self.client, self.settings)
        if request.action == "merge":
            wanted = request.fingerprints + ([request.into] if request.into else [])
            known = await run_in_threadpool(known_fingerprints, self.client, self.settings, wanted)
            changes = plan_merge(mapping, request.fingerprints, known, who.name, into=request.into, note=request.note)
        else:
            changes = plan_unmerge(mapping, request.fingerprints, who.name, note=request.note)
        await self._publish(self.merge_publisher, changes)
        for c in changes:
            log.info("web: %s %s %s by %s", c.fingerprint, c.action, c.primary, c.changed_by)
        return changes

    def pending_change(self, fingerprint: str) -> IssueStatusChange | None:
        entry = self.pending.get(fingerprint)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > PENDING_SECONDS:
            self.pending.pop(fingerprint, None)
            return None
        return entry[1]

    async def apply_ownership(self, alert: AlertEvent) -> None:
        """A new issue: assign it to the owner the rules name, if it has no assignee yet."""
        rules = self.settings.ownership_rules
        if not rules or not alert.fingerprint:
            return
        facts = await run_in_threadpool(self._facts, alert)
        owner = owner_for(rules, facts)
        if owner is None:
            return
        bot = Principal(name="ownership-rules", role="member", token_id="")
        state = await run_in_threadpool(workflow_state, self.client, self.settings, [alert.fingerprint])
        if (state.get(alert.fingerprint) or {}).get("assignee"):
            return
        await self.apply(ActionRequest(action="assign", fingerprints=[alert.fingerprint], assignee=owner,
                                       note="ownership rule"), bot, check_known=False)

    def _facts(self, alert: AlertEvent) -> IssueFacts:
        """The new issue's trigger event (if already stored), else what the alert itself says."""
        facts = IssueFacts(service=alert.service)
        detail = None
        deadline = time.monotonic() + FACTS_WAIT_SECONDS  # the sink may store the event a moment after the alert
        while alert.trigger_event_id and detail is None:
            detail = self.queries.event(str(alert.trigger_event_id))
            if detail is None and time.monotonic() > deadline:
                break
            if detail is None:
                time.sleep(1.0)
        if detail is not None:
            facts.tags = detail.tags
            for exc in detail.exceptions:
                for fr in exc.frames:
                    facts.paths += [p for p in (fr.filename, fr.abs_path) if p]
                    if fr.module:
                        facts.modules.append(fr.module)
        return facts
