"""A small, hand-designed error history with answers known in advance.

The analyst views and the cookbook are tested against it. Events are built as
``ProcessedEvent`` JSON (what the sink reads from Kafka) and written through the
sink's own row builders (``sinks/clickhouse/rows.py``) in sink-sized batches with dedup
tokens, so every materialized view runs exactly as in production. Times are
relative to ``now`` and kept far from window edges (24 h, 48 h, 30 d) so the
answers do not depend on when the test runs.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from schemas.events import ErrorEvent, ExceptionInfo, StackFrame, User
from schemas.processed import ProcessedEvent
from sinks.clickhouse.rows import (
    EVENT_COLUMNS,
    OCCURRENCE_COLUMNS,
    RECOVERY_COLUMNS,
    MinuteCounts,
    RecoveryCounts,
    event_row,
    occurrence,
)


def fp(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


@dataclass(frozen=True)
class Burst:
    """``n`` events of one issue spread over ``minutes`` minutes starting ``ago`` before now."""

    issue: str
    service: str
    level: str
    ago: timedelta
    n: int
    users: int  # distinct users u0..u{users-1}, cycled; 0 = no user
    minutes: int = 30
    store_every: int = 1  # 1 = every event stored; 4 = one in four (sample_rate 0.25)
    release: str = "1.0.0"
    environment: str = "production"


ISSUES: dict[str, tuple[str, str, str]] = {  # issue → (exception type, title, culprit)
    "A": ("KeyError", "KeyError: 'cart_id'", "checkout.cart in load_cart"),
    "B": ("OperationalError", "OperationalError: database timeout", "billing.db in charge"),
    "C": ("TypeError", "TypeError: NoneType is not iterable", "auth.session in refresh"),
    "D": ("ZeroDivisionError", "ZeroDivisionError: division by zero", "checkout.tax in rate"),
    "E": ("ValueError", "ValueError: bad amount", "billing.invoice in total"),
    "F": ("UserWarning", "UserWarning: deprecated flag", "auth.flags in read"),
    "G": ("ConnectionError", "ConnectionError: payments gateway", "checkout.pay in submit"),
}

BURSTS: list[Burst] = [
    # A: the busiest issue of the day, sampled 1 in 4, two releases; also seen yesterday.
    Burst("A", "checkout", "error", timedelta(hours=2, minutes=30), 300, users=20, minutes=60, store_every=4),
    Burst("A", "checkout", "error", timedelta(hours=30), 40, users=20, release="0.9.0"),
    # B: open critical, new today.
    Burst("B", "billing", "critical", timedelta(hours=3), 10, users=10, minutes=10),
    # C: warnings without users, fewer today than yesterday.
    Burst("C", "auth", "warning", timedelta(hours=5), 5, users=0, minutes=5),
    Burst("C", "auth", "warning", timedelta(hours=30), 10, users=0, minutes=10),
    # D: critical ten days ago, resolved since.
    Burst("D", "checkout", "critical", timedelta(days=10), 8, users=4, minutes=8),
    # E: twenty days ago, resolved, came back 50 minutes ago (a regression), also once in checkout's staging.
    Burst("E", "billing", "error", timedelta(days=20), 3, users=3, minutes=3),
    Burst("E", "billing", "error", timedelta(minutes=50), 2, users=2, minutes=2, release="1.1.0"),
    Burst("E", "checkout", "error", timedelta(minutes=40), 1, users=1, minutes=1, environment="staging"),
    # F: ignored warning.
    Burst("F", "auth", "warning", timedelta(days=3), 6, users=0, minutes=6),
    # G: fewer events than A but the most users (P1 by users).
    Burst("G", "checkout", "error", timedelta(hours=6), 150, users=120, minutes=30),
]


@dataclass
class Dataset:
    now: datetime
    processed: list[dict[str, Any]] = field(default_factory=list)
    status_history: list[list[Any]] = field(default_factory=list)
    alerts: list[list[Any]] = field(default_factory=list)
    chains: list[list[Any]] = field(default_factory=list)

    def events(self, **where: Any) -> list[dict[str, Any]]:
        """Processed events matching simple filters (the oracle the tests compare with)."""
        out = []
        for p in self.processed:
            e = p["event"]
            if all((p.get(k) if k in p else e.get(k)) == v for k, v in where.items()):
                out.append(p)
        return out

    def ts(self, p: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(p["event"]["timestamp"])


def _event(b: Burst, i: int, start: datetime) -> dict[str, Any]:
    etype, title, culprit = ISSUES[b.issue]
    ts = start + timedelta(seconds=(b.minutes * 60 - 1) * i / max(b.n - 1, 1))
    event = ErrorEvent(
        event_id=uuid.uuid5(uuid.NAMESPACE_OID, f"{b.issue}/{start.isoformat()}/{i}"),
        timestamp=ts,
        service=b.service,
        environment=b.environment,
        release=b.release,
        level=b.level,  # type: ignore[arg-type]
        message=title,
        user=User(id=f"u{i % b.users}") if b.users else None,
        exceptions=[ExceptionInfo(type=etype, value=title.split(": ", 1)[-1], stacktrace=[
            StackFrame(module=culprit.split(" in ")[0], function=culprit.split(" in ")[-1], lineno=10 + i % 7, in_app=True),
        ])],
        trace_id=f"{i:032x}" if b.issue in ("A", "B") else None,
    )
    stored = i % b.store_every == 0
    processed = ProcessedEvent(
        event=event, fingerprint=fp(b.issue), title=title, culprit=culprit, exception_type=etype,
        sample_rate=1.0 / b.store_every, stored=stored, drop_reason=None if stored else "sampled",
        received_at=ts + timedelta(milliseconds=150),
    )
    return processed.model_dump(mode="json")


def build(now: datetime | None = None) -> Dataset:
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    ds = Dataset(now=now)
    for b in BURSTS:
        start = (now - b.ago).replace(second=0)
        ds.processed.extend(_event(b, i, start) for i in range(b.n))

    def h(delta: timedelta) -> datetime:
        return now - delta

    ds.status_history = [
        [fp("D"), "acknowledged", h(timedelta(days=9, hours=23)), "ana", ""],
        [fp("D"), "resolved", h(timedelta(days=9)), "ana", "fixed in 1.0.0"],  # 24 h after its first event
        [fp("E"), "resolved", h(timedelta(days=18)), "bo", ""],  # 48 h after its first event
        [fp("E"), "new", h(timedelta(minutes=35)), "detector", "regression"],
        [fp("F"), "ignored", h(timedelta(days=2)), "bo", "noise"],
        [fp("B"), "investigating", h(timedelta(hours=2)), "cy", ""],
        [fp("C"), "resolved", h(timedelta(hours=10)), "cy", ""],  # 20 h after its first event; seen again since
    ]
    ds.alerts = [
        [uuid.uuid5(uuid.NAMESPACE_OID, "spike-A"), "spike", "error", f"spike:checkout:{fp('A')}",
         h(timedelta(hours=2)), "checkout", fp("A"), ISSUES["A"][1], "300 events/h vs baseline 20",
         uuid.UUID(int=0), h(timedelta(hours=2)), '{"rate": 5.0, "baseline": 0.33}'],
        [uuid.uuid5(uuid.NAMESPACE_OID, "new-B"), "new_issue", "critical", f"new:billing:{fp('B')}",
         h(timedelta(hours=3)), "billing", fp("B"), ISSUES["B"][1], "", uuid.UUID(int=0),
         h(timedelta(hours=3)), "{}"],
    ]
    t0 = h(timedelta(hours=3))
    ds.chains = [[
        "ab" * 16, uuid.uuid5(uuid.NAMESPACE_OID, "chain-root"), "billing", fp("B"), ISSUES["B"][1],
        t0, t0 + timedelta(seconds=2), ["billing", "checkout"], 3,
        [uuid.uuid5(uuid.NAMESPACE_OID, f"chain-{k}") for k in range(3)],
        ["billing", "checkout", "checkout"], [fp("B"), fp("A"), fp("A")],
        [ISSUES["B"][1], ISSUES["A"][1], ISSUES["A"][1]],
        [t0, t0 + timedelta(seconds=1), t0 + timedelta(seconds=2)], t0 + timedelta(seconds=3),
    ]]
    return ds


ALERT_COLUMNS = [
    "alert_id", "kind", "severity", "dedup_key", "created_at", "service", "fingerprint", "title", "message",
    "trigger_event_id", "trigger_event_time", "details",
]
CHAIN_COLUMNS = [
    "trace_id", "root_event_id", "root_service", "root_fingerprint", "root_title", "started_at", "ended_at",
    "services", "event_count", "events.event_id", "events.service", "events.fingerprint", "events.title",
    "events.timestamp", "updated_at",
]


def insert_batch(client: Client, db: str, records: list[dict[str, Any]], token: str) -> None:
    """Write one sink batch exactly as the sink does: raw stored events + true counts, with tokens."""
    events = [event_row(r) for r in records if r.get("stored", True)]
    counts = MinuteCounts()
    for r in records:
        counts.add(r)
    if events:
        client.insert(f"{db}.error_events", events, column_names=EVENT_COLUMNS,
                      settings={"insert_deduplication_token": token + "/events",
                                "deduplicate_blocks_in_dependent_materialized_views": 1})
    client.insert(f"{db}.error_occurrences_in", counts.rows(), column_names=OCCURRENCE_COLUMNS,
                  settings={"insert_deduplication_token": token + "/counts",
                            "deduplicate_blocks_in_dependent_materialized_views": 1})
    recovery = RecoveryCounts()
    for r in records:
        recovery.add_occurrence(occurrence(r))
    if recovery.cells:  # as the sink: only batches with recovery events write here
        client.insert(f"{db}.recovery_occurrences_in", recovery.rows(), column_names=RECOVERY_COLUMNS,
                      settings={"insert_deduplication_token": token + "/recovery",
                                "deduplicate_blocks_in_dependent_materialized_views": 1})


def load(client: Client, db: str, ds: Dataset, batch: int = 100) -> None:
    for k in range(0, len(ds.processed), batch):
        insert_batch(client, db, ds.processed[k:k + batch], f"test/{k}")
    client.insert(f"{db}.issue_status_history", ds.status_history,
                  column_names=["fingerprint", "status", "changed_at", "changed_by", "note"])
    client.insert(f"{db}.alerts", ds.alerts, column_names=ALERT_COLUMNS)
    client.insert(f"{db}.error_chains", ds.chains, column_names=CHAIN_COLUMNS)

