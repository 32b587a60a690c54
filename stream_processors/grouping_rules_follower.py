"""The worker's view of the published grouping rules, and the point from which each version applies.

``errstream rules apply`` publishes a version to the compacted rules topic (key: the version) with an
``effective_at_ms`` a few seconds in the future. An event uses the newest version whose ``effective_at_ms``
is at or before the event's Kafka timestamp on ``errors`` (broker time: the topic is created with
``LogAppendTime``). Both are recorded in Kafka, so every worker, and every replay of the same records,
groups an event with the same rules.

A worker must not group an event stamped T before it has read every version effective at or before T.
Versions are published ``delay`` ahead of their effect, so a follower whose last fetch is at most
``delay`` old has them all; ``ready_for`` waits only when the follower lags more than that.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from stream_processors.grouping_rules import GroupingRules, parse_rules

log = logging.getLogger("errstream.rules")


@dataclass
class RulesBook:
    """Every published version, ordered by the time it takes effect."""

    effective_ms: list[int] = field(default_factory=list)
    versions: list[GroupingRules] = field(default_factory=list)

    def add(self, effective_at_ms: int, rules: GroupingRules) -> None:
        if any(v.version == rules.version and e == effective_at_ms
               for e, v in zip(self.effective_ms, self.versions, strict=True)):
            return
        i = bisect.bisect_right(self.effective_ms, effective_at_ms)
        self.effective_ms.insert(i, effective_at_ms)
        self.versions.insert(i, rules)

    def at(self, timestamp_ms: int | None) -> GroupingRules | None:
        """The version in force at ``timestamp_ms`` (None: no rules)."""
        if not self.versions or timestamp_ms is None:
            return None
        i = bisect.bisect_right(self.effective_ms, timestamp_ms)
        if i == 0:
            return None
        rules = self.versions[i - 1]
        return None if rules.empty else rules


class RulesFollower:
    """Reads the rules topic from its start and keeps following it, in the worker's event loop."""

    def __init__(self, settings: Settings, book: RulesBook) -> None:
        self.settings = settings
        self.book = book
        self.synced_at_ms = 0  # wall time at which the follower had read everything the topic held
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        s = self.settings
        await ensure_topics(s, [s.topic_grouping_rules])
        # no group: every worker reads every version, from the start (nothing is committed)
        consumer = AIOKafkaConsumer(s.topic_grouping_rules, **s.kafka_client_kwargs(), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=200)
        await consumer.start()
        self._consumer = consumer
        try:
            await self._catch_up()
        except BaseException:
            await self.stop()
            raise
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _catch_up(self) -> None:
        """Read until the position reaches the end offsets asked for now; then ``synced_at_ms`` is now."""
        assert self._consumer is not None
        asked = int(time.time() * 1000)
        while not self._consumer.assignment():
            await self._poll(100)  # the assignment arrives with the first metadata
        tps = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(tps)
        while True:
            positions = [await self._consumer.position(tp) for tp in ends]
            if all(pos >= end for pos, end in zip(positions, ends.values(), strict=True)):
                break
            await self._poll(200)
        self.synced_at_ms = asked

    async def _follow(self) -> None:
        while True:
            try:
                await self._catch_up()
                await self._poll(200)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker hiccup: ready_for waits, the next round retries
                log.warning("grouping rules: following the topic failed (%s); retrying", exc)
                await asyncio.sleep(1.0)

    async def _poll(self, timeout_ms: int) -> None:
        assert self._consumer is not None
        polled = await self._consumer.getmany(timeout_ms=timeout_ms)
        for records in polled.values():
            for record in records:
                if record.value is None:
                    continue
                try:
                    body = orjson.loads(record.value)
                    rules = parse_rules(body["text"])
                    self.book.add(int(body["effective_at_ms"]), rules)
                    log.info("grouping rules %s take effect at %s", rules.version, body["effective_at_ms"])
                except Exception as exc:  # noqa: BLE001 - any record's fault is that record's alone
                    log.warning("grouping rules record at offset %s ignored: %s", record.offset, exc)

    async def ready_for(self, timestamp_ms: int, timeout: float = 30.0) -> None:
        """Wait until every version effective at or before ``timestamp_ms`` has been read (bounded)."""
        delay_ms = int(self.settings.grouping_rules_delay_seconds * 1000)
        deadline = time.monotonic() + timeout
        while self.synced_at_ms + delay_ms < timestamp_ms:
            if time.monotonic() > deadline:
                log.warning("grouping rules: the topic could not be read for %.0f s; grouping with the rules known",
                            timeout)
                return
            await asyncio.sleep(0.05)
