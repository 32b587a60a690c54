"""One Kafka topic → ClickHouse (and side effects): a step on the consumer runtime.

The alerts, chains and issue-status topics carry few records (alerts are rare by
design), so unlike the event sink these steps do not batch across polls: what one
poll brought is handled partition by partition and its offsets are reported done
afterwards; the runtime commits them. At-least-once is made exact by idempotent
writes — every target table is a ReplacingMergeTree on the record's identity,
inserts carry the dedup token ``group/topic/partition/first-last``, and subclasses
skip work that is already recorded (alerts already stored, deliveries already final).

A commit refused after a rebalance (aiokafka #929) is logged and counted by the
runtime, never fatal: the next owner replays the records and the idempotent writes
absorb them. Records that do not parse, and rows ClickHouse refuses (found by
splitting the insert), go to the dead-letter topic with stage and reason; an
unreachable ClickHouse keeps the batch and is retried with backoff by the runtime.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from clickhouse_connect.driver.client import Client
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from errstream_core.consumer import ConsumerRuntime, DeadLetters, InfrastructureError, Step, start_producer
from errstream_core.consumer.dead_letters import describe
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from schemas.dead_letter import Reason, ValidationProblem
from sinks.clickhouse import storage
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate

log = logging.getLogger("errstream.topic_sink")

RECORDS = Counter("errstream_topic_sink_records", "Records handled by the notify consumers", ["sink", "result"])

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class TopicSink(Step):
    """Subclasses set ``name``, ``topic`` and implement ``handle``; the runtime does the rest."""

    name: str = "topic"

    def __init__(self, settings: Settings, topic: str, client: Client | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self.group = f"{settings.sink_group}-{self.name}"
        self.client = client
        self.producer: AIOKafkaProducer | None = None
        self.dead_letters = DeadLetters(self.name, settings.topic_dlq)
        self.buffered: dict[TopicPartition, list[ConsumerRecord]] = {}
        self.pending: dict[TopicPartition, list[ConsumerRecord]] | None = None
        self.stats: dict[str, int] = {"records": 0, "invalid": 0}

    @property
    def db(self) -> str:
        return self.settings.clickhouse_database

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        try:
            if self.client is None:
                # No session: the notifier records deliveries to several destinations concurrently.
                self.client = await asyncio.to_thread(connect, self.settings, autogenerate_session_id=False)
            await asyncio.to_thread(migrate, self.settings, self.client)
        except Exception as exc:
            self.client = None
            raise InfrastructureError("ClickHouse", exc) from exc
        try:
            await ensure_topics(self.settings, [self.topic, self.settings.topic_dlq],  # configs: errstream_core.topics
                                timeout=self.settings.startup_timeout)
            if self.producer is None:
                self.producer = self.dead_letters.producer = await start_producer(self.settings)
        except KafkaError as exc:
            raise InfrastructureError("Kafka", exc) from exc

    async def close(self) -> None:
        if self.producer is not None:
            await asyncio.wait_for(self.producer.stop(), 3)

    def runtime(self) -> ConsumerRuntime:
        return ConsumerRuntime(self.settings, self, topics=[self.topic], group=self.group, max_records=2_000)

    async def run(self, stop: asyncio.Event) -> None:
        await self.runtime().run(stop)

    # -- the step ------------------------------------------------------------
    async def submit(self, tp: TopicPartition, records: Sequence[ConsumerRecord]) -> None:
        self.buffered.setdefault(tp, []).extend(records)

    def accepting(self) -> bool:
        return sum(len(r) for r in self.buffered.values()) < 10_000

    async def poll(self, force: bool = False) -> dict[TopicPartition, int]:
        if self.pending is None:  # frozen until handled, so a retry repeats the same tokens
            if not self.buffered:
                return {}
            self.pending, self.buffered = self.buffered, {}
        batches = self.pending
        try:
            await self.handle(batches)
        except (InfrastructureError, KafkaError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - some record's fault (or a bug it triggers): find it
            await self._isolate(batches, exc)
        await self.dead_letters.flush()
        self.pending = None
        self.stats["records"] += sum(len(msgs) for msgs in batches.values())
        return {tp: msgs[-1].offset + 1 for tp, msgs in batches.items()}

    async def _isolate(self, batches: dict[TopicPartition, list[ConsumerRecord]], first: Exception) -> None:
        """``handle`` raised for a reason that is not a server's: handle record by record, dead-letter the ones
        that still fail (stage ``handle``, reason ``processing_error``) and go on.

        Without this one record whose handling raises stops the consumer, and after every restart it reads the
        same record and stops again: no record on any topic errstream consumes may do that. Handling is
        idempotent, so records of the batch already written are absorbed when handled again.
        """
        log.error("%s: a batch failed (%s); handling its records one by one", self.name, describe(first))
        for tp, msgs in batches.items():
            for m in msgs:
                try:
                    await self.handle({tp: [m]})
                except (InfrastructureError, KafkaError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # noqa: BLE001
                    log.error("%s: record %s[%d]@%d could not be handled: %s", self.name, m.topic, m.partition,
                              m.offset, describe(exc))
                    await self.refuse(m, "handle", "processing_error", f"could not be handled: {describe(exc)}")

    async def revoke(self, partitions: set[TopicPartition], deadline: float) -> dict[TopicPartition, int]:
        done: dict[TopicPartition, int] = {}
        try:
            done = await self.poll(force=True)
            done.update(await self.poll(force=True))
        except InfrastructureError as exc:
            log.warning("%s: hand-over without handling the last records (%s); the next owner replays them",
                        self.name, exc)
        finally:
            if self.pending is not None:
                for tp, msgs in self.pending.items():
                    if tp not in partitions:
                        self.buffered[tp] = msgs + self.buffered.get(tp, [])
                self.pending = None
            for tp in partitions:
                self.buffered.pop(tp, None)
        return done

    @abstractmethod
    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Write/deliver one poll's records; must be idempotent (a replay after a lost commit repeats it)."""

    # -- helpers for subclasses ---------------------------------------------
    async def parse(self, msgs: Sequence[ConsumerRecord], model: type[M]) -> list[tuple[ConsumerRecord, M]]:
        """Valid records with their models; the rest dead-lettered with the reason (tombstones are skipped)."""
        out: list[tuple[ConsumerRecord, M]] = []
        for m in msgs:
            if m.value is None:  # a tombstone on a compacted topic: nothing to write
                RECORDS.labels(self.name, "tombstone").inc()
                continue
            try:
                out.append((m, model.model_validate_json(m.value)))
                RECORDS.labels(self.name, "ok").inc()
            except ValidationError as exc:
                await self.dead_letter(m, exc)
            except Exception as exc:  # noqa: BLE001 - e.g. RecursionError on deep nesting: the record's fault
                await self.refuse(m, "decode", "processing_error", describe(exc))
        return out

    async def refuse(self, m: ConsumerRecord, stage: str, reason: Reason, detail: str,
                     problems: list[ValidationProblem] | None = None) -> None:
        self.stats["invalid"] += 1
        RECORDS.labels(self.name, "invalid").inc()
        await self.dead_letters.refuse(m.value, source_topic=m.topic, partition=m.partition, offset=m.offset,
                                       stage=f"{self.name}-{stage}", reason=reason,
                                       detail=f"{self.name} sink: {detail}", problems=problems, key=m.key)

    async def dead_letter(self, m: ConsumerRecord, exc: ValidationError) -> None:
        problems = [ValidationProblem(loc=".".join(map(str, e["loc"])), msg=e["msg"]) for e in exc.errors()[:20]]
        bad_json = any(e["type"] == "json_invalid" for e in exc.errors())
        reason: Literal["invalid_json", "invalid_event"] = "invalid_json" if bad_json else "invalid_event"
        await self.refuse(m, "decode", reason, f"could not read a {self.topic} record", problems)

    async def rows(self, parsed: Sequence[tuple[ConsumerRecord, T]],
                   build: Callable[[T], list[Any]]) -> list[tuple[ConsumerRecord, list[Any]]]:
        """Rows built record by record; a record whose row cannot be built is dead-lettered alone."""
        out = []
        for m, value in parsed:
            try:
                out.append((m, build(value)))
            except Exception as exc:  # noqa: BLE001
                await self.refuse(m, "rows", "processing_error", f"could not build its row: {describe(exc)}")
        return out

    def token(self, tp: TopicPartition, msgs: Sequence[ConsumerRecord]) -> str:
        return f"{self.group}/{tp.topic}/{tp.partition}/{msgs[0].offset}-{msgs[-1].offset}"

    async def insert(
        self, table: str, rows: list[list[Any]], columns: list[str], token: str | None = None,
        sources: Sequence[ConsumerRecord] | None = None,
    ) -> None:
        """One insert; rows ClickHouse refuses are found by splitting it and dead-lettered (with ``sources``,
        the records they came from, aligned with ``rows``); an unreachable server raises InfrastructureError."""
        if not rows:
            return
        client = self.client
        assert client is not None

        async def write(items: Sequence[int], tok: str) -> None:
            settings: dict[str, Any] = {}
            if tok:
                settings = {"insert_deduplication_token": tok,
                            "deduplicate_blocks_in_dependent_materialized_views": 1}
            await storage.insert(client, f"{self.db}.{table}", [rows[i] for i in items], columns, settings)

        async def refuse(i: int, exc: storage.RowError) -> None:
            if sources is not None:
                await self.refuse(sources[i], "insert", "unstorable", f"ClickHouse refused its {table} row: {exc}")
            else:
                log.error("%s: ClickHouse refused a %s row: %s", self.name, table, exc)

        await storage.bisect(list(range(len(rows))), token or "", lambda i: i, write, refuse)

    async def query_uuids(self, sql: str, ids: Sequence[uuid.UUID], chunk: int = 1_000) -> list[tuple[Any, ...]]:
        """``sql`` with ``{uuids}`` replaced by a literal UUID list, in chunks.

        Literals, not a bound ``Array(UUID)`` parameter: this predates the embedded endpoint's support
        for the multipart form clickhouse-connect posts when parameters are too long for a URL, and
        stays because it is equally safe: values are ``uuid.UUID`` objects, so their text is hex and
        dashes only — nothing to inject.
        """
        client = self.client
        assert client is not None
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(ids), chunk):
            literal = "(" + ",".join(f"'{uuid.UUID(str(x))}'" for x in ids[i:i + chunk]) + ")"
            query = sql.replace("{uuids}", literal)
            result = await storage.call(lambda q=query: client.query(q))  # type: ignore[misc]
            out.extend(tuple(r) for r in result.result_rows)
        return out
