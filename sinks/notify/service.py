"""``errstream notify``: the alerts, chains and issue-status consumers in one process.

They are small (alerts are rare by design) and share a deployment unit, but each
has its own consumer group (``<sink_group>-alerts`` …), so they commit
independently and can be split across processes with ``--only``. A failure in
one stops the process (TaskGroup) so the supervisor restarts it; uncommitted
records are then replayed idempotently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from errstream_core.settings import Settings
from sinks.clickhouse.chains_sink import ChainsSink
from sinks.clickhouse.sessions_sink import SessionsSink
from sinks.clickhouse.status_sink import MergeSink, StatusSink
from sinks.clickhouse.topic_sink import TopicSink
from sinks.delivery.digest import DigestSender
from sinks.derived_alerts.alert_rules import RuleEvaluator
from sinks.derived_alerts.auto_resolve import AutoResolver
from sinks.derived_alerts.escalation import Escalator
from sinks.notify.alerts_consumer import AlertsSink

CONSUMERS: dict[str, type[TopicSink]] = {"alerts": AlertsSink, "chains": ChainsSink, "status": StatusSink,
                                         "merges": MergeSink, "sessions": SessionsSink}
# periodic tasks of the same process: they read ClickHouse and publish alerts (or, auto_resolve, status changes)
PERIODIC: dict[str, type[Escalator] | type[DigestSender] | type[RuleEvaluator] | type[AutoResolver]] = {
    "escalation": Escalator, "digest": DigestSender, "rules": RuleEvaluator, "auto_resolve": AutoResolver}
ROLES = sorted([*CONSUMERS, *PERIODIC])


async def run_notify(settings: Settings, stop: asyncio.Event, only: Sequence[str] = ()) -> None:
    names = list(only) or ROLES
    unknown = sorted(set(names) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown consumer(s) {unknown}; choose from {ROLES}")
    async with asyncio.TaskGroup() as group:
        for name in names:
            if name in PERIODIC:
                group.create_task(PERIODIC[name](settings).run(stop))
            else:
                group.create_task(CONSUMERS[name](settings).run(stop))  # type: ignore[call-arg]
