"""One Kafka topic → ClickHouse (and side effects), committing only after they succeeded.

The alerts, chains and issue-status topics carry few records (alerts are rare by
design), so unlike the event sink these consumers do not batch across polls:
each ``getmany`` is handled partition by partition and its offsets are committed
afterwards. At-least-once is made exact by idempotent writes — every target
table is a ReplacingMergeTree on the record's identity, inserts carry the
dedup token ``group/topic/partition/first-last``, and subclasses skip work that
is already recorded (alerts already stored, deliveries already final).

A ``CommitFailedError`` (a rebalance between poll and commit, aiokafka #929)
is logged and counted, never fatal: the next owner replays the records and the
idempotent writes absorb them. Records that do not parse go to the dead-letter
topic with the reason, so nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from clickhouse_connect.driver.client import Client
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from schemas.dead_letter import DeadLetter, ValidationProblem
from sinks.clickhouse_client import connect
from sinks.migrate import migrate

log = logging.getLogger("errstream.topic_sink")

RECORDS = Counter("errstream_topic_sink_records", "Records handled by the notify consumers", ["sink", "result"])
COMMIT_FAILURES = Counter("errstream_topic_sink_commit_failures", "Offset commits lost to a rebalance", ["sink"])

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class TopicSink(ABC):
    """Subclasses set ``name``, ``topic`` and implement ``handle``; ``run`` does the rest."""

    name: str = "topic"

    def __init__(self, settings: Settings, topic: str, client: Client | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self.group = f"{settings.sink_group}-{self.name}"
        self.client = client
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.stopping = asyncio.Event()
        self.stats: dict[str, int] = {"records": 0, "invalid": 0, "commit_failures": 0}

    @property
    def db(self) -> str:
        return self.settings.clickhouse_database

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        if self.client is None:
            # No session: the notifier records deliveries to several destinations concurrently.
            self.client = await asyncio.to_thread(connect, self.settings, autogenerate_session_id=False)
        await asyncio.to_thread(migrate, self.settings, self.client)
        wait = self.settings.startup_timeout
        await ensure_topics(self.settings, [self.topic], timeout=wait)  # configs: errstream_core.topics.topic_configs
        await ensure_topics(self.settings, [self.settings.topic_dlq], timeout=wait)
        kw = self.settings.kafka_client_kwargs()
        self.producer = AIOKafkaProducer(**kw, acks="all", enable_idempotence=True)
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            self.topic, **kw, group_id=self.group, enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await self.consumer.start()

    async def stop(self) -> None:
        self.stopping.set()
        for client in (self.consumer, self.producer):
            if client is not None:
                await client.stop()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        await self.start()
        try:
            while stop is None or not stop.is_set():
                await self.poll_once()
        finally:
            await self.stop()

    # -- consuming -----------------------------------------------------------
    async def poll_once(self, timeout_ms: int = 200) -> None:
        assert self.consumer is not None
        batches = {tp: msgs for tp, msgs in (await self.consumer.getmany(timeout_ms=timeout_ms,
                                                                          max_records=2_000)).items() if msgs}
        if batches:
            await self.handle(batches)
            self.stats["records"] += sum(len(msgs) for msgs in batches.values())
            await self.commit({tp: OffsetAndMetadata(msgs[-1].offset + 1, "") for tp, msgs in batches.items()})

    @abstractmethod
    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Write/deliver one poll's records; must be idempotent (a replay after a lost commit repeats it)."""

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        assert self.consumer is not None
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            self.stats["commit_failures"] += 1
            COMMIT_FAILURES.labels(self.name).inc()
            log.warning("%s: commit failed (%s); the records will be replayed idempotently", self.name, exc)

    # -- helpers for subclasses ---------------------------------------------
    async def parse(self, msgs: Sequence[ConsumerRecord], model: type[M]) -> list[M]:
        """Valid records as models; the rest dead-lettered with the reason (tombstones are skipped)."""
        out: list[M] = []
        for m in msgs:
            if m.value is None:  # a tombstone on a compacted topic: nothing to write
                RECORDS.labels(self.name, "tombstone").inc()
                continue
            try:
                out.append(model.model_validate_json(m.value))
                RECORDS.labels(self.name, "ok").inc()
            except ValidationError as exc:
                await self.dead_letter(m, exc)
        return out

    async def dead_letter(self, m: ConsumerRecord, exc: ValidationError) -> None:
        self.stats["invalid"] += 1
        RECORDS.labels(self.name, "invalid").inc()
        problems = [ValidationProblem(loc=".".join(map(str, e["loc"])), msg=e["msg"]) for e in exc.errors()[:20]]
        bad_json = any(e["type"] == "json_invalid" for e in exc.errors())
        reason: Literal["invalid_json", "invalid_event"] = "invalid_json" if bad_json else "invalid_event"
        dl = DeadLetter.for_payload(
            m.value or b"", reason=reason, detail=f"{self.name} sink could not read a {self.topic} record",
            source_topic=m.topic, problems=problems, partition=m.partition, offset=m.offset,
        )
        log.warning("%s: %s at %s[%d]@%d dead-lettered", self.name, reason, m.topic, m.partition, m.offset)
        assert self.producer is not None
        await self.producer.send_and_wait(self.settings.topic_dlq, dl.model_dump_json().encode())

    def token(self, tp: TopicPartition, msgs: Sequence[ConsumerRecord]) -> str:
        return f"{self.group}/{tp.topic}/{tp.partition}/{msgs[0].offset}-{msgs[-1].offset}"

    async def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Run a ClickHouse call in a thread, retrying until it succeeds or the sink stops (then: replay)."""
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=10) + wait_random(0, 0.2),
            stop=lambda _: self.stopping.is_set(),
            retry=retry_if_exception_type(Exception), reraise=True,
            before_sleep=lambda rs: log.warning("%s: %s failed, retrying: %s", self.name, what,
                                                rs.outcome.exception() if rs.outcome else None),
        ):
            with attempt:
                return await asyncio.to_thread(fn)
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def insert(
        self, table: str, rows: list[list[Any]], columns: list[str], token: str | None = None,
    ) -> None:
        if not rows:
            return
        client = self.client
        assert client is not None
        settings: dict[str, Any] = {}
        if token:
            settings = {"insert_deduplication_token": token, "deduplicate_blocks_in_dependent_materialized_views": 1}
        await self._retrying(f"insert into {table}", lambda: client.insert(
            f"{self.db}.{table}", rows, column_names=columns, settings=settings))

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
            result = await self._retrying("query", lambda q=query: client.query(q))  # type: ignore[misc]
            out.extend(tuple(r) for r in result.result_rows)
        return out
