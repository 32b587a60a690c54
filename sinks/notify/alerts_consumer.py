"""The ``alerts`` topic → ClickHouse ``alerts`` + webhook notifications.

Per poll: parse (bad records → dead-letter topic), drop alert ids already
stored (an alert published twice, or a replay after a lost commit), insert the
rest with an offset-range dedup token per partition, deliver to the webhooks,
record every attempt in ``alert_deliveries``, and only then commit. Deliveries
already final for an (alert, destination) are skipped, so replays do not page
twice; the ``Idempotency-Key`` header covers the one remaining window (a crash
between a receiver's 2xx and the delivery record).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from schemas.alerts import AlertEvent
from sinks.clickhouse.topic_sink import TopicSink
from sinks.delivery.dispatch import DELIVERY_COLUMNS, FINAL_OUTCOMES, DeliveryAttempt, WebhookNotifier
from sinks.delivery.email import IssueFacts
from sinks.delivery.owners import AlertOwners, with_owners
from sinks.derived_alerts.alert_rules import AlertRulesFollower, route

ALERT_COLUMNS = [
    "alert_id", "kind", "severity", "dedup_key", "created_at", "service", "fingerprint", "title", "message",
    "trigger_event_id", "trigger_event_time", "details", "owner",
]
NIL_UUID = uuid.UUID(int=0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def alert_row(a: AlertEvent) -> list[Any]:
    """Optional fields become the column defaults (nil UUID, epoch, empty string): the table has no Nullables."""
    return [
        a.alert_id, a.kind, a.severity, a.dedup_key, a.created_at, a.service, a.fingerprint or "", a.title,
        a.message, a.trigger_event_id or NIL_UUID, a.trigger_event_time or EPOCH,
        orjson.dumps(a.details, default=str).decode(), a.owner or "",
    ]


class AlertsSink(TopicSink):
    name = "alerts"

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        super().__init__(settings, settings.topic_alerts, client)
        self.notifier = WebhookNotifier([*settings.alert_webhooks, *settings.alert_emails], self,
                                        web_base_url=settings.web_base_url)
        self.stats["stored"] = 0
        self.rules = AlertRulesFollower(settings)  # routed rules set severity and destinations
        self.owners: AlertOwners | None = None  # made on first use: it needs the ClickHouse client

    async def close(self) -> None:
        await self.rules.stop()
        await super().close()
        await self.notifier.close()

    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        rules = await self.rules.poll()
        parsed = {tp: [(m, route(a, rules)) for m, a in await self.parse(msgs, AlertEvent)]
                  for tp, msgs in batches.items()}
        owners = await self._owners([a for alerts in parsed.values() for _, a in alerts])
        if owners:
            parsed = {tp: [(m, a) for (m, _), a in zip(alerts, with_owners([a for _, a in alerts], owners),
                                                        strict=True)]
                      for tp, alerts in parsed.items()}
        unique: dict[uuid.UUID, AlertEvent] = {}
        for alerts in parsed.values():
            for _, alert in alerts:
                unique.setdefault(alert.alert_id, alert)
        if not unique:
            return
        stored = await self._stored_ids(list(unique.values()))
        seen_before = list(stored)
        for tp, alerts in parsed.items():
            new = []
            for m, a in alerts:  # once, even when published twice in this poll
                if a.alert_id not in stored:
                    stored.add(a.alert_id)
                    new.append((m, a))
            rows = await self.rows(new, alert_row)
            await self.insert("alerts", [r for _, r in rows], ALERT_COLUMNS, self.token(tp, batches[tp]),
                              [m for m, _ in rows])
            self.stats["stored"] += len(new)
        await self.notifier.deliver_all(list(unique.values()), seen_before)

    async def _owners(self, alerts: Sequence[AlertEvent]) -> dict[str, str]:
        """alert id → owner of its issue (``alert_owner.py``); before storing, so the row and the payloads agree."""
        if not alerts:
            return {}
        if self.owners is None:
            assert self.client is not None
            self.owners = AlertOwners(self.client, self.db, self.settings.ownership_rules)
        return await asyncio.to_thread(self.owners.resolve, alerts)

    async def _stored_ids(self, alerts: Sequence[AlertEvent]) -> set[uuid.UUID]:
        rows = await self.query_uuids(
            f"SELECT DISTINCT alert_id FROM {self.db}.alerts WHERE alert_id IN {{uuids}}", [a.alert_id for a in alerts],
        )
        return {r[0] for r in rows}

    # -- DeliveryLog ---------------------------------------------------------
    async def record(self, attempts: Sequence[DeliveryAttempt]) -> None:
        await self.insert("alert_deliveries", [a.row() for a in attempts], DELIVERY_COLUMNS)

    async def issue_facts(self, fingerprint: str) -> IssueFacts | None:
        client = self.client
        assert client is not None

        def query() -> IssueFacts | None:
            rows = client.query(
                f"SELECT culprit, events, users, first_seen, last_seen, status FROM {self.db}.v_error_groups "
                "WHERE fingerprint = {fp:String}", parameters={"fp": fingerprint}).result_rows
            if not rows:
                return None
            culprit, events, users, first_seen, last_seen, status = rows[0]
            return IssueFacts(culprit, int(events), int(users), first_seen, last_seen, status)

        return await asyncio.to_thread(query)

    async def finished(self, alert_ids: Sequence[uuid.UUID]) -> set[tuple[str, str]]:
        final = ",".join(f"'{o}'" for o in FINAL_OUTCOMES)
        rows = await self.query_uuids(
            f"SELECT DISTINCT toString(alert_id), destination FROM {self.db}.alert_deliveries "
            f"WHERE alert_id IN {{uuids}} AND outcome IN ({final})", alert_ids,
        )
        return {(r[0], r[1]) for r in rows}
