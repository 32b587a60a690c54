"""Dead letters in one place: every refused record goes to ``errors.dlq`` with stage, reason and source.

Steps call :meth:`DeadLetters.refuse` for a record that cannot be handled (bad input,
an exception in any step, a row ClickHouse will not take). The record is counted by
stage and reason, published without waiting, and :meth:`DeadLetters.flush` — called by
the step before it reports offsets as done — waits for the broker's acks, so a
dead letter is never lost when its input offset is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from errstream_core.consumer.outage import InfrastructureError
from schemas.dead_letter import DeadLetter, Reason, ValidationProblem

log = logging.getLogger("errstream.dead_letters")
LOG_EVERY = 1.0  # seconds between dead-letter log lines; every dead letter is counted regardless

DEAD_LETTERS = Counter("errstream_dead_letters", "Records sent to the dead-letter topic, by stage and reason",
                       ["consumer", "stage", "reason"])


def describe(exc: BaseException) -> str:
    """A short, safe description of an exception (its text can be huge or recursive)."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a hostile __str__ must not escape
        text = "?"
    return f"{type(exc).__name__}: {text[:1_000]}"


class DeadLetters:
    def __init__(self, consumer: str, topic: str, producer: AIOKafkaProducer | None = None) -> None:
        self.consumer = consumer
        self.topic = topic
        self.producer = producer
        self.acks: list[asyncio.Future[Any]] = []
        self.count = 0
        self._logged_at = -LOG_EVERY
        self._unlogged = 0

    async def refuse(self, value: bytes | None, *, source_topic: str, partition: int | None, offset: int | None,
                     stage: str, reason: Reason, detail: str, problems: list[ValidationProblem] | None = None,
                     key: bytes | None = None) -> DeadLetter:
        dl = DeadLetter.for_payload(
            value or b"", reason=reason, detail=detail, source_topic=source_topic, problems=problems,
            partition=partition, offset=offset, stage=stage,
        )
        await self.publish(dl, key)
        return dl

    async def publish(self, dl: DeadLetter, key: bytes | None = None) -> None:
        """``key``: the refused record's own key, kept so a replay lands where the original would have."""
        DEAD_LETTERS.labels(self.consumer, dl.stage, dl.reason).inc()
        self.count += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:  # a flood of bad input must not flood the log: counted, sampled
            more = f" ({self._unlogged} more since the last line)" if self._unlogged else ""
            log.warning("%s: dead letter at %s[%s]@%s: %s/%s %s%s", self.consumer, dl.source_topic,
                        dl.source_partition, dl.source_offset, dl.stage, dl.reason, dl.detail[:200], more)
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1
        assert self.producer is not None
        try:
            self.acks.append(await self.producer.send(self.topic, dl.model_dump_json().encode(), key=key))
        except KafkaError as exc:
            raise InfrastructureError("Kafka", exc) from exc

    async def flush(self) -> None:
        if not self.acks:
            return
        await asyncio.wait(self.acks)  # a cancelled wait leaves them pending (gather would cancel them)
        acks, self.acks = self.acks, []
        try:
            for ack in acks:
                ack.result()
        except KafkaError as exc:
            raise InfrastructureError("Kafka", exc) from exc
