"""`errstream issue …` → compacted status topic → status sink → ClickHouse `issue_status`, on the real services."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from clickhouse_connect.driver.client import Client

from errstream.issue_cli import make_change
from errstream_core.settings import Settings
from producers.issue_status import publish_status_change
from sinks.clickhouse.status_sink import StatusSink
from tests.support.alerts import query_rows
from tests.support.cli import cli
from tests.support.kafka import read_topic
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e


def latest(ch: Client, settings: Settings, fp: str) -> tuple | None:
    rows = query_rows(ch, f"SELECT toString(status), changed_by, note FROM {settings.clickhouse_database}"
                          ".issue_status FINAL WHERE fingerprint = {fp:String}", {"fp": fp})
    return rows[0] if rows else None


def topic_cleanup_policy(settings: Settings, topic: str) -> str:
    async def go() -> str:
        admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
        await admin.start()
        try:
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            entries = response.resources[0][4]  # (name, value, …); field names differ between versions
            return next(e[1] for e in entries if e[0] == "cleanup.policy")
        finally:
            await admin.close()

    return asyncio.run(go())


def test_issue_commands_reach_issue_status_with_who_and_note(settings: Settings, ch: Client, tmp_path: Path) -> None:
    fp, other = uuid.uuid4().hex, uuid.uuid4().hex
    notify = Service("notify", settings, tmp_path).start()
    try:
        steps = [("ack", fp, "alice", "looking at it"), ("ignore", other, "carol", "known noisy client"),
                 ("resolve", fp, "bob", "fixed in 1.2.3")]
        for command, target, by, note in steps:
            done = cli(settings, "issue", command, target, "--by", by, "--note", note)
            assert done.returncode == 0, done.stdout + done.stderr
        assert "→ resolved by bob: fixed in 1.2.3" in done.stdout

        got = wait_for(lambda: latest(ch, settings, fp), lambda r: r is not None and r[0] == "resolved", 60,
                       "the resolved status in ClickHouse", diagnostics=notify.output)
        assert got == ("resolved", "bob", "fixed in 1.2.3")
        wait_for(lambda: latest(ch, settings, other), lambda r: r is not None, 30, "the ignored issue")
    finally:
        notify.stop()

    history = ch.query(f"SELECT toString(status), changed_by FROM {settings.clickhouse_database}.issue_status_history "
                       "FINAL WHERE fingerprint = {fp:String} ORDER BY changed_at", parameters={"fp": fp}).result_rows
    assert history == [("acknowledged", "alice"), ("resolved", "bob")]

    assert topic_cleanup_policy(settings, settings.topic_issue_status) == "compact"
    on_topic = read_topic(settings, settings.topic_issue_status, expect=3, timeout=20)
    assert [(r["fingerprint"], r["status"]) for r in on_topic if r["fingerprint"] == fp] == [
        (fp, "acknowledged"), (fp, "resolved")]

    shown = cli(settings, "issue", "status", fp)
    assert shown.returncode == 0, shown.stderr
    assert f"{fp}: resolved since" in shown.stdout and "by bob — fixed in 1.2.3" in shown.stdout
    assert "acknowledged" in shown.stdout and "looking at it" in shown.stdout  # the history table

    resolved = cli(settings, "issue", "list", "--status", "resolved")
    assert fp in resolved.stdout and other not in resolved.stdout
    everything = cli(settings, "issue", "list")
    assert fp in everything.stdout and other in everything.stdout and "ignored" in everything.stdout

    unknown = cli(settings, "issue", "status", uuid.uuid4().hex)
    assert unknown.returncode == 1 and "no such issue" in unknown.stderr


def test_a_malformed_fingerprint_is_refused_with_a_reason(settings: Settings) -> None:
    done = cli(settings, "issue", "resolve", "not-a-fingerprint")
    assert done.returncode == 2
    assert "is not a fingerprint" in done.stderr and "32 hex characters" in done.stderr


def test_a_batch_written_but_not_committed_before_a_rebalance_is_replayed_once(
    settings: Settings, ch: Client,
) -> None:
    """A writes a record, B joins before A commits: A's late commit does not raise (the runtime commits only
    partitions A still owns), A then dies without committing more, B replays whatever A did not commit, and
    ClickHouse drops the repeated block by its offset-range token: one history row."""
    fp = uuid.uuid4().hex

    async def scenario() -> tuple[int, int]:
        await publish_status_change(settings, make_change(fp, "resolved", "fixed", "dana"))
        a, b = StatusSink(settings), StatusSink(settings)
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        rt_a, rt_b = a.runtime(), b.runtime()
        assert await rt_a._start(stop_a)
        assert rt_a.consumer is not None
        done: dict = {}
        while not done:  # poll and write, but do not commit yet
            batch = await rt_a.consumer.getmany(timeout_ms=500)
            async with rt_a.lock:
                for tp, records in batch.items():
                    if records:
                        await rt_a._take(tp, records)
                done = await a.poll()
        task_b = asyncio.create_task(rt_b.run(stop_b))  # the rebalance
        while not rt_b.owned:
            await asyncio.sleep(0.2)
        await rt_a._commit(done)  # must not raise
        await rt_a.consumer.stop()  # A dies: no revoke, no further commit
        await a.close()
        while len(rt_b.owned) < settings.topic_partitions:
            await asyncio.sleep(0.2)
        if not rt_a.stats["commits"]:
            while b.stats["records"] == 0:  # B replays the record A wrote but did not commit
                await asyncio.sleep(0.2)
        stop_b.set()
        await task_b
        return rt_a.stats["commits"], b.stats["records"]

    committed_by_a, replayed = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert committed_by_a + replayed == 1
    db = settings.clickhouse_database
    assert ch.query(f"SELECT count() FROM {db}.issue_status_history").result_rows[0][0] == 1
    assert latest(ch, settings, fp) == ("resolved", "dana", "fixed")
