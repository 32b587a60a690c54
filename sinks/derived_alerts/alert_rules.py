"""Alert rules as code in ``errstream notify``: follow the published rules, evaluate the measured ones, route.

* ``AlertRulesFollower`` keeps the latest published ``AlertRules`` (compacted topic, one key), so a new
  file applies without restarting anything.
* ``RuleEvaluator`` (a periodic task) asks ClickHouse's true counts every
  ``ERRSTREAM_ALERT_RULES_INTERVAL_SECONDS`` whether a measured rule (count, errors per minute, error
  rate, level) holds per service (or per issue), and publishes a ``rule`` alert when it does. The alert id
  is derived from the rule, the scope and the cooldown period, so a rule fires at most once per cooldown
  across rounds, restarts and several notify processes.
* ``route`` applies routed rules (new_issue, regression, spike, …) to detection's alerts: the first
  matching rule sets their severity and destinations.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from schemas.alert_rules import (
    MEASURED,
    ROUTED,
    AlertRule,
    AlertRules,
    AlertRulesError,
    parse_alert_rules,
    unknown_destinations,
)
from schemas.alerts import AlertEvent, alert_id
from sinks.clickhouse.client import connect
from sinks.derived_alerts.periodic import publish_alerts_periodically

log = logging.getLogger("errstream.alert_rules")
LEVELS = {"debug": 1, "info": 2, "warning": 3, "error": 4, "critical": 5}


class AlertRulesFollower:
    """The latest alert rules on the topic; ``poll`` reads what arrived since the last call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rules = AlertRules()
        self.version = ""
        self._consumer: AIOKafkaConsumer | None = None
        self._caught_up = False

    async def poll(self) -> AlertRules:
        if self._consumer is None:
            s = self.settings
            await ensure_topics(s, [s.topic_alert_rules], timeout=s.startup_timeout)
            self._consumer = AIOKafkaConsumer(s.topic_alert_rules, **s.kafka_client_kwargs(), group_id=None,
                                              enable_auto_commit=False, auto_offset_reset="earliest")
            await self._consumer.start()
        # The first read waits a little for the topic's current rules; later ones take what the background
        # fetcher already has (0 ms), so handling alerts one by one (a batch that failed) costs no waits.
        polled = await self._consumer.getmany(timeout_ms=0 if self._caught_up else 200)
        self._caught_up = True
        for records in polled.values():
            for record in records:
                if record.value is None:
                    continue
                try:
                    body = orjson.loads(record.value)
                    self.rules = parse_alert_rules(body["text"])
                    self.version = str(body.get("version", ""))
                    log.info("alert rules %s in force (%d rules)", self.version, len(self.rules.rules))
                    self._warn_unknown_destinations()
                except Exception as exc:  # noqa: BLE001 - a bad record is ignored, never stops notify
                    log.warning("alert rules record at offset %s ignored: %s", record.offset,
                                exc if isinstance(exc, AlertRulesError) else f"{type(exc).__name__}: {exc}")
        return self.rules

    def _warn_unknown_destinations(self) -> None:
        """``rules check|apply`` refuse unknown names; rules published with another configuration still say so."""
        problems = unknown_destinations(self.rules, self.settings.destination_names)
        for problem in problems:
            log.error("alert rules %s: %s; its alerts are recorded as unknown_destination", self.version, problem)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
            self._caught_up = False


def _matches_service(rule: AlertRule, service: str) -> bool:
    return fnmatchcase(service.lower(), rule.service.lower())


def route(alert: AlertEvent, rules: AlertRules) -> AlertEvent:
    """Detection's alert with the first matching routed rule's severity and destinations (or as it is)."""
    for rule in rules.rules:
        if rule.when not in ROUTED or rule.when != alert.kind or not _matches_service(rule, alert.service):
            continue
        if rule.issue and not (alert.fingerprint or "").startswith(rule.issue):
            continue
        details = {**alert.details, "rule": rule.name}
        if rule.destinations:
            details["destinations"] = rule.destinations
        return alert.model_copy(update={"severity": rule.severity, "details": details})
    return alert


def measure_sql(rule: AlertRule, db: str) -> tuple[str, dict[str, Any]]:
    """(SQL, parameters) giving (scope, service, value) rows for one measured rule."""
    params: dict[str, Any] = {"window": rule.window_minutes}
    scope = "fingerprint" if rule.issue else "service"
    issue = ""
    if rule.issue:
        issue = " AND startsWith(fingerprint, {issue:String})"
        params["issue"] = rule.issue
    since = "minute >= now() - toIntervalMinute({window:UInt32})"
    if rule.when == "recovery_rate":
        method = ""
        if rule.method:
            method = " AND method = {method:String}"
            params["method"] = rule.method
        params["min_attempts"] = rule.min_attempts
        return (f"SELECT {scope}, any(service), 100 * sum(successful) / sum(attempted) AS value "
                f"FROM {db}.recovery_counts_1m WHERE {since}{issue}{method} GROUP BY {scope} "
                "HAVING sum(attempted) >= {min_attempts:UInt64}", params)
    if rule.when == "error_rate":
        return (f"SELECT service, service, if(sum(started) = 0, 0, 100 * least(sum(errored) + "
                f"uniqCombinedMerge(12)(errored_sessions), sum(started)) / sum(started)) AS value "
                f"FROM {db}.session_counts_1m WHERE {since} GROUP BY service", params)
    value = "sum(events)" if rule.when != "errors_per_minute" else "sum(events) / {window:UInt32}"
    level = ""
    if rule.when == "level":
        level = " AND toInt8(level) >= {level:Int8}"
        params["level"] = LEVELS[rule.level]
    return (f"SELECT {scope}, any(service), {value} AS value FROM {db}.error_counts_1m "
            f"WHERE {since}{issue}{level} GROUP BY {scope}", params)


def fires(rule: AlertRule, value: float) -> bool:
    if rule.when == "recovery_rate":
        return value < rule.threshold  # too few recoveries succeed
    return value > 0 if rule.when == "level" else value > rule.threshold


def rule_alert(rule: AlertRule, scope: str, service: str, value: float, now: float) -> AlertEvent:
    period = max(rule.cooldown_minutes, rule.window_minutes) * 60
    bucket = int(now // period)
    unit = {"count": "events", "errors_per_minute": "errors/min", "error_rate": "% errored",
            "level": f"events at {rule.level} or above",
            "recovery_rate": f"% of {rule.method or 'recovery'} attempts succeeded"}[rule.when]
    shown = (f"{value:.2f}" if rule.when in ("errors_per_minute", "error_rate", "recovery_rate")
             else f"{int(value):,}")
    limit = "" if rule.when == "level" else f" (threshold {rule.threshold:g})"
    details: dict[str, Any] = {"rule": rule.name, "value": round(value, 4), "threshold": rule.threshold,
                               "window_minutes": rule.window_minutes}
    if rule.destinations:
        details["destinations"] = rule.destinations
    return AlertEvent(
        alert_id=alert_id("rule", rule.name, scope, bucket), kind="rule", severity=rule.severity,
        dedup_key=f"rule:{rule.name}:{scope}", created_at=datetime.now(UTC), service=service,
        fingerprint=scope if rule.issue else None, title=f"{rule.name}: {shown} {unit} in {rule.window_minutes} min",
        message=f"{service}: {shown} {unit} in the last {rule.window_minutes} min{limit}", details=details,
    )


class RuleEvaluator:
    """A periodic task of ``errstream notify`` evaluating measured rules on ClickHouse's true counts."""

    name = "rules"

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client
        self.follower = AlertRulesFollower(settings)
        self.published: set[Any] = set()

    async def evaluate(self, rules: AlertRules, now: float | None = None) -> list[AlertEvent]:
        s = self.settings
        now = time.time() if now is None else now
        if self.client is None:
            self.client = await asyncio.to_thread(connect, s, autogenerate_session_id=False)
        client = self.client
        out: list[AlertEvent] = []
        for rule in rules.rules:
            if rule.when not in MEASURED:
                continue
            sql, params = measure_sql(rule, s.clickhouse_database)
            result = await asyncio.to_thread(client.query, sql, parameters=params)
            for scope, service, value in result.result_rows:
                if _matches_service(rule, str(service)) and fires(rule, float(value)):
                    alert = rule_alert(rule, str(scope), str(service), float(value), now)
                    if alert.alert_id not in self.published:
                        out.append(alert)
        return out

    async def round(self) -> list[AlertEvent]:
        return await self.evaluate(await self.follower.poll())

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        try:
            await publish_alerts_periodically(s, stop, "alert rules", s.alert_rules_interval_seconds, self.round,
                                              self.published, log)
        finally:
            await self.follower.stop()
