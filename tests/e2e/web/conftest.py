"""One loaded history, one web app and one status sink per test module (the web tests share them)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from errstream.web.auth import TokenStore
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from schemas.ownership import OwnershipRule
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from tests.e2e.analytics.data import Dataset, build, load
from tests.support.services import Service
from tests.support.web import running_web


@dataclass
class WebEnv:
    settings: Settings
    url: str
    ch: Client
    ds: Dataset
    tokens: dict[str, str]  # role → token (names: vera the viewer, alice the member, root the admin)
    notify: Service


@pytest.fixture(scope="module")
def web_env(kafka_bootstrap: str, clickhouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebEnv]:
    run = uuid.uuid4().hex[:10]
    home = tmp_path_factory.mktemp("web")
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, clickhouse_url=clickhouse_url, clickhouse_database=f"errstream_w{run}",
        topic_errors=f"w{run}.errors", topic_dlq=f"w{run}.errors.dlq", topic_alerts=f"w{run}.alerts",
        topic_processed=f"w{run}.processed", topic_issue_status=f"w{run}.issue-status",
        topic_issue_merges=f"w{run}.issue-merges", app_id=f"w{run}-errstream",
        sink_group=f"w{run}-sink", home=home, web_login_per_minute=600,
        ownership_rules=[OwnershipRule(kind="module", pattern="auth.*", owner="#identity")],
    )
    asyncio.run(ensure_topics(settings))
    migrate(settings)
    client = connect(settings, database=settings.clickhouse_database)
    ds = build()
    load(client, settings.clickhouse_database, ds)
    store = TokenStore(settings.tokens_path)
    tokens = {"viewer": store.create("vera", "viewer"), "member": store.create("alice", "member"),
              "admin": store.create("root", "admin")}
    notify = Service("notify", settings, Path(home), extra_env={"ERRSTREAM_HOME": str(home)}).start()
    try:
        with running_web(settings) as url:
            yield WebEnv(settings, url, client, ds, tokens, notify)
    finally:
        notify.stop()
        client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        client.close()
