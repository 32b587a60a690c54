"""`errstream demo`: the whole pipeline on this machine, with a summary of what landed."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from errstream.local.clickhouse import LocalClickHouse
from errstream.local.kafka import LocalKafka
from errstream.local.roles import BACKGROUND_ROLES, RoleProcess, start_background_role
from errstream_core.local_credentials import ANALYST_USER, password_file
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from producers.publisher import ErrorPublisher
from producers.synthetic import synthetic_event
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate

MALFORMED = [b"{not json", b'{"service": "", "message": "no service"}', b'{"service": "billing", "level": "loud"}']


async def _publish(settings: Settings, count: int) -> None:
    rng = random.Random()
    start = datetime.now(UTC) - timedelta(minutes=30)
    services = ["billing", "checkout", "auth"]
    async with ErrorPublisher(settings) as pub:
        await pub.publish_many(
            synthetic_event(rng, services[i % 3], timestamp=start + timedelta(seconds=1800 * i / count))
            for i in range(count)
        )
        await pub.publish_many_raw(MALFORMED)


def flaky_payments(settings: Settings, calls: int, seed: int | None = None) -> int:
    """A `payment` service whose bank refuses 30 % of requests, called through the SDK's ``errstream.retry``:
    each call that failed at least once reports one event with its outcome. Returns how many were sent."""
    from producers.recovery import retry
    from producers.sdk import Client

    rng = random.Random(seed)
    client = Client("payment", settings=settings, environment="demo")

    def charge() -> str:
        if rng.random() < 0.3:
            raise ConnectionRefusedError("bank gateway refused the connection")
        return "charged"

    charge_with_retries = retry(attempts=3, backoff=0.001, client=client)(charge)
    for _ in range(calls):
        try:
            charge_with_retries()
        except ConnectionRefusedError:
            pass  # three refusals in a row: the episode is reported as not recovered
    client.flush(10.0)
    sent = int(client.stats["sent"])
    client.close(2.0)
    return sent


def run_demo(settings: Settings, count: int, console: Console) -> int:
    t0 = time.monotonic()
    kafka = LocalKafka(state_dir=settings.home, cache_dir=settings.cache_dir, version=settings.kafka_version,
                       port=settings.local_kafka_port, partitions=settings.topic_partitions)
    ch_local = LocalClickHouse(state_dir=settings.home, port=settings.local_clickhouse_port)
    if settings.kafka_bootstrap == kafka.bootstrap:
        console.print(f"kafka      {kafka.up()}")
    local_ch = settings.clickhouse_url.rstrip("/") == ch_local.url
    if local_ch:
        console.print(f"clickhouse {ch_local.up()}")
    analyst = password_file(settings.home, ANALYST_USER)
    login = f'-u "{ANALYST_USER}:$(cat {analyst})" ' if local_ch else ""
    client = connect(settings)
    migrate(settings, client)
    asyncio.run(ensure_topics(settings))
    db = settings.clickhouse_database

    def total() -> int:
        return int(client.query(f"SELECT sum(events) FROM {db}.error_counts_1m").result_rows[0][0] or 0)

    def episodes() -> int:
        return int(client.query(f"SELECT sum(episodes) FROM {db}.recovery_counts_1m").result_rows[0][0] or 0)

    before, episodes_before = total(), episodes()
    procs = [RoleProcess(role, settings, settings.home, name=f"demo-{role}").start() for role in ("worker", "sink")]
    web_login = _web_login(settings)
    try:
        console.print(f"publishing {count} events from 3 services (+{len(MALFORMED)} malformed payloads)…")
        asyncio.run(_publish(settings, count))
        console.print("calling a flaky bank 300 times from `payment` through errstream.retry…")
        payments = flaky_payments(settings, 300)
        count += payments
        deadline = time.monotonic() + 180
        while total() < before + count or episodes() < episodes_before + payments:
            if time.monotonic() > deadline:
                console.print(f"[red]only {total() - before} of {count} events arrived; see {settings.home}/demo-*.log")
                return 1
            time.sleep(0.5)
    finally:
        for p in procs:
            p.stop()

    by_service = Table(title=f"error_counts_1m by service (database {db}, all runs)")
    for col in ("service", "events", "raw events stored", "issues", "users"):
        by_service.add_column(col, justify="right" if col != "service" else "left")
    for row in client.query(
        f"SELECT service, sum(events), sum(stored), uniqExact(fingerprint), uniqCombinedMerge(12)(users) "
        f"FROM {db}.error_counts_1m GROUP BY service ORDER BY service"
    ).result_rows:
        by_service.add_row(*(str(v) for v in row))
    top = Table(title="top issues")
    for col in ("events", "service", "title", "culprit"):
        top.add_column(col)
    for row in client.query(
        f"SELECT c.n, c.service, e.title, e.culprit FROM "
        f"(SELECT service, fingerprint, sum(events) AS n FROM {db}.error_counts_1m GROUP BY service, fingerprint) c "
        f"LEFT JOIN (SELECT fingerprint, any(title) AS title, any(culprit) AS culprit FROM {db}.error_events "
        f"GROUP BY fingerprint) e ON c.fingerprint = e.fingerprint ORDER BY c.n DESC LIMIT 8"
    ).result_rows:
        top.add_row(str(row[0]), row[1], row[2][:60], row[3][:50])
    recovery = Table(title="recovery (v_recovery_by_method, last 24 h)")
    for col in ("service", "method", "attempted", "recovered", "success rate %", "avg ms", "median ms", "p95 ms"):
        recovery.add_column(col, justify="left" if col in ("service", "method") else "right")
    for row in client.query(
        f"SELECT service, method, attempted, successful, success_rate_pct, avg_recovery_ms, median_recovery_ms,"
        f" p95_recovery_ms FROM {db}.v_recovery_by_method").result_rows:
        recovery.add_row(*("—" if v is None else str(v) for v in row))
    console.print(by_service)
    console.print(top)
    console.print(recovery)
    console.print(
        f"{count} events published, {total() - before} counted; {len(MALFORMED)} malformed payloads went to "
        f"{settings.topic_dlq}. Done in {time.monotonic() - t0:.1f}s. "
        f"Query it: curl {login}'{ch_local.url if local_ch else settings.clickhouse_url}"
        f"/?query=SELECT+count()+FROM+{db}.error_events'. "
        "Stop with `errstream local down`."
    )
    console.print(web_login)
    return 0


def _web_login(settings: Settings) -> str:
    """Start `errstream web` (and `notify`, which records status changes) in the background; say how to log in."""
    import httpx

    from errstream.web.auth import TokenStore

    token = TokenStore(settings.tokens_path).create("demo", "admin", created_by="errstream demo")
    url = f"http://{settings.web_host}:{settings.web_port}"
    try:
        running = httpx.get(f"{url}/healthz", timeout=2).status_code == 200  # from an earlier demo
    except httpx.HTTPError:
        running = False
    if not running:  # left running after the demo, like Kafka and ClickHouse
        for command in BACKGROUND_ROLES:
            start_background_role(command, settings)
    return (f"Web app: {url}/ — log in with this token (admin): {token}  "
            f"(logs in {settings.home}/demo-web.log)")
