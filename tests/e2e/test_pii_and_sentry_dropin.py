"""Secrets and personal data never reach Kafka raw; Sentry SDKs (brotli or not, Python or Node) land completely.

Each test sends the issue's examples (connection URLs with passwords, e-mail addresses,
``password=`` query strings, Authorization/Cookie headers) and then reads what an operator
could read: the raw ``errors`` topic and ClickHouse.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from clickhouse_connect.driver.client import Client

from errstream_core.settings import GatewayProject, Settings
from errstream_core.topics import ensure_topics
from producers.sdk import Client as SdkClient
from tests.support.apps.sentry_web import DATABASE_URL, REDIS_URL
from tests.support.gateway import running_gateway
from tests.support.kafka import read_topic
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e

SECRETS = ("hunter22", "hunter2", "s3cretpw", "secret-token-123", "abc123session", "key-xyz-987",
           "ada@example.com", "bob@example.org")
OWNER = "bob@example.org"
MANGLED = "<email>:5432"  # what an e-mail matcher eating a URL's userinfo and host leaves


def _no_secrets(blob: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in blob, f"{secret!r} in {where}: {blob[blob.find(secret) - 200:][:400]}"
    assert MANGLED not in blob, where


def _rows(ch: Client, settings: Settings, where: str = "1") -> list[dict[str, Any]]:
    try:
        result = ch.query(f"SELECT * FROM {settings.clickhouse_database}.error_events FINAL WHERE {where} "
                          "ORDER BY timestamp")
    except Exception:  # the sink creates the tables on start
        return []
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def _wait_rows(ch: Client, settings: Settings, n: int, services: dict[str, Service], where: str = "1") -> list[dict]:
    return wait_for(lambda: _rows(ch, settings, where), lambda rows: len(rows) >= n, 120, f"{n} events stored",
                    diagnostics=lambda: services["worker"].output()[-2000:] + services["sink"].output()[-2000:])


@pytest.fixture
def gateway(settings: Settings) -> Iterator[str]:
    settings.gateway_projects = {"42": GatewayProject(public_key="webkey42", service="web")}
    with running_gateway(settings) as url:
        yield url


def _run_sentry_app(dsn: str, release: str, brotli: bool) -> str:
    block = "" if brotli else "import sys; sys.modules['brotli'] = None; "  # as if brotli were not installed
    code = f"{block}from tests.support.apps import sentry_web; sentry_web.main({dsn!r}, {release!r})"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_unmodified_sentry_sdk_with_and_without_brotli_lands_complete_and_scrubbed(
    settings: Settings, ch: Client, services: dict[str, Service], gateway: str
) -> None:
    dsn = gateway.replace("http://", "http://webkey42@") + "/42"
    assert "compression: br" in _run_sentry_app(dsn, "web@br", brotli=True)
    assert "compression: gzip" in _run_sentry_app(dsn, "web@gzip", brotli=False)

    raw = read_topic(settings, settings.topic_errors, expect=4, timeout=60)
    assert len(raw) == 4
    _no_secrets(orjson.dumps(raw).decode(), "the raw errors topic")

    rows = _wait_rows(ch, settings, 4, services)
    _no_secrets(orjson.dumps(rows, default=str).decode(), "ClickHouse error_events")
    for release in ("web@br", "web@gzip"):
        [crash] = [r for r in rows if r["release"] == release and r["exception_type"] == "ConnectionError"]
        assert crash["title"] == "ConnectionError: redis://:[Filtered]@cache:6379/0 refused the connection"
        assert crash["request_method"] == "POST" and crash["request_url"] == "https://shop.example.com/checkout"
        assert crash["request_query_string"] == "password=[Filtered]&page=2"
        headers = {k.lower(): v for k, v in crash["request_headers"].items()}
        assert headers["user-agent"] == "shop-client/1.0" and headers["x-request-id"] == "req-7f3a"
        assert all(headers.get(h, "[Filtered]") == "[Filtered]" for h in ("authorization", "cookie", "x-api-key"))
        assert crash["correlation_id"] == "req-7f3a"  # from the X-Request-Id header
        assert (crash["user_id"], crash["user_username"], crash["user_ip"]) == ("u-7", "ada", "203.0.113.5")
        context = json.loads(crash["context"])
        assert context["database"]["url"] == "postgres://admin:[Filtered]@db.internal.example.com:5432/app"
        crumb = json.loads(crash["breadcrumbs"])[-1]
        assert crumb["message"] == "connecting to redis://:[Filtered]@cache:6379/0"
        assert crumb["data"] == {"url": "redis://:[Filtered]@cache:6379/0", "password": "[Filtered]"}
        [message] = [r for r in rows if r["release"] == release and r["exception_type"] == ""]
        assert message["level"] == "critical"  # Sentry's "fatal"
        assert message["message"] == ("login failed for <email> via "
                                      "postgres://admin:[Filtered]@db.internal.example.com:5432/app")


def test_own_sdk_scrubs_before_kafka_unless_told_not_to(
    settings: Settings, ch: Client, services: dict[str, Service]
) -> None:
    def send(scrub: bool, release: str) -> None:
        client = SdkClient("billing", release=release, settings=settings, scrub=scrub)
        try:
            client.add_breadcrumb(f"reconnecting {REDIS_URL}", category="cache")
            try:
                raise ConnectionError(f"{REDIS_URL} refused; owner {OWNER}")  # source lines are code, kept
            except ConnectionError:
                client.capture_exception(user={"id": "u-9", "email": OWNER},
                                         extra={"dsn": DATABASE_URL, "api_key": "key-xyz-987"})
            assert client.flush(30), client.stats
        finally:
            client.close()

    send(scrub=True, release="scrubbed")
    raw = read_topic(settings, settings.topic_errors, expect=1, timeout=60)
    _no_secrets(orjson.dumps(raw).decode(), "the raw errors topic (SDK default)")
    assert raw[0]["exceptions"][0]["value"] == "redis://:[Filtered]@cache:6379/0 refused; owner <email>"

    send(scrub=False, release="raw")  # opting out: the topic has it raw, the worker still scrubs
    raw = read_topic(settings, settings.topic_errors, expect=2, timeout=60)
    assert "hunter22" in orjson.dumps([e for e in raw if e["release"] == "raw"]).decode()

    rows = _wait_rows(ch, settings, 2, services)
    _no_secrets(orjson.dumps(rows, default=str).decode(), "ClickHouse error_events")
    by_release = {r["release"]: r for r in rows}
    # the worker's scrub is idempotent: an event scrubbed by the SDK is stored as one scrubbed only by the worker
    for column in ("title", "message", "context", "fingerprint", "user_hash"):
        assert by_release["scrubbed"][column] == by_release["raw"][column], column
    crumbs = {r: [{k: v for k, v in c.items() if k != "timestamp"} for c in json.loads(by_release[r]["breadcrumbs"])]
              for r in ("scrubbed", "raw")}
    assert crumbs["scrubbed"] == crumbs["raw"]


def _retention_ms(settings: Settings, topic: str) -> str | None:
    async def read() -> str | None:
        admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
        await admin.start()
        try:
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            for resource in response.resources:
                for entry in resource[4]:
                    if entry[0] == "retention.ms":
                        return str(entry[1])
            return None
        finally:
            await admin.close()

    return asyncio.run(read())


def test_dead_letter_topic_gets_a_short_configurable_retention(settings: Settings) -> None:
    # the `settings` fixture ran ensure_topics: the DLQ was created with the default of 72 hours
    assert _retention_ms(settings, settings.topic_dlq) == str(72 * 3_600_000)
    assert _retention_ms(settings, settings.topic_errors) != str(72 * 3_600_000)  # only the DLQ
    settings.dlq_retention_hours = 24  # an existing topic follows a changed setting
    asyncio.run(ensure_topics(settings))
    # the broker applies a config change a moment after acknowledging it
    wait_for(lambda: _retention_ms(settings, settings.topic_dlq), lambda v: v == str(24 * 3_600_000), 30,
             "the DLQ's new retention")
    fresh = settings.model_copy(update={"topic_dlq": f"t{uuid.uuid4().hex[:8]}.dlq", "dlq_retention_hours": 6})
    asyncio.run(ensure_topics(fresh, [fresh.topic_dlq]))
    assert _retention_ms(fresh, fresh.topic_dlq) == str(6 * 3_600_000)


NODE_APP = """
const Sentry = require("@sentry/node");
Sentry.init({ dsn: process.env.DSN, release: "node@1", environment: "staging", sendDefaultPii: true,
              tracesSampleRate: 0, integrations: [] });
Sentry.setUser({ id: "u-11", username: "grace", email: "ada@example.com", ip_address: "198.51.100.4" });
Sentry.setContext("database", { url: process.env.DATABASE_URL });
Sentry.withScope((scope) => {
  scope.addEventProcessor((event) => {
    event.request = { method: "GET", url: "https://shop.example.com/cart", query_string: "token=hunter2&x=1",
                      headers: { "X-Request-Id": "node-req-1", "Authorization": "Bearer secret-token-123",
                                 "Cookie": "session=abc123session", "User-Agent": "node-client" } };
    return event;
  });
  Sentry.captureException(new Error(`connect ${process.env.REDIS_URL} failed`));
});
Sentry.flush(10000).then(() => process.exit(0));
"""


@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None, reason="node/npm not installed")
def test_sentry_node_sdk_lands_scrubbed(settings: Settings, gateway: str, tmp_path: Path) -> None:
    app = tmp_path / "node-app"
    app.mkdir()
    install = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "@sentry/node@^11"],
                             cwd=app, capture_output=True, text=True, timeout=300, check=False)
    if install.returncode != 0:
        pytest.skip(f"the npm registry did not provide @sentry/node: {install.stderr[-300:]}")
    (app / "app.js").write_text(NODE_APP)
    env = {**os.environ, "DSN": gateway.replace("http://", "http://webkey42@") + "/42",
           "DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL}
    run = subprocess.run(["node", "app.js"], cwd=app, env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 0, run.stderr
    [event] = read_topic(settings, settings.topic_errors, expect=1, timeout=60)
    _no_secrets(orjson.dumps(event).decode(), "the raw errors topic (@sentry/node)")
    assert event["sdk"].startswith("sentry.javascript.node/")
    assert event["exceptions"][-1]["value"] == "connect redis://:[Filtered]@cache:6379/0 failed"
    assert event["context"]["database"]["url"] == "postgres://admin:[Filtered]@db.internal.example.com:5432/app"
    assert event["request"]["query_string"] == "token=[Filtered]&x=1"
    assert event["correlation_id"] == "node-req-1"
    assert event["user"]["username"] == "grace" and event["user"]["ip_address"] == "198.51.100.4"
    assert event["user"]["email"].startswith("email:")  # hashed, as the worker does


def test_the_gateway_scrubs_before_kafka_on_every_endpoint(settings: Settings, gateway: str) -> None:
    auth = {"X-Sentry-Auth": "Sentry sentry_key=webkey42, sentry_version=7"}
    own = {"service": "web", "message": f"cache {REDIS_URL} down for {OWNER}",
           "request": {"url": "https://shop.example.com/login?password=hunter2", "query_string": "password=hunter2",
                       "headers": {"Authorization": "Bearer secret-token-123", "X-Request-Id": "own-1"}},
           "context": {"db": DATABASE_URL}, "user": {"id": "u-1", "email": "ada@example.com"}}
    # identity in the other places it hides: user.id/username, a custom fingerprint, a frame's source line
    own_identity = {"service": "web", "message": "login failed", "fingerprint": ["login", "jane.doe@example.com"],
                    "user": {"id": "jane.doe@example.com", "username": "jane.doe@example.com"},
                    "exceptions": [{"type": "ConnectionError", "value": "refused", "stacktrace": [
                        {"filename": "app/db.py", "function": "connect", "lineno": 3, "context_line":
                         'raise ConnectionError("postgres://admin:S3cretP4ss@db:5432/app jane.doe@example.com")'}]}]}
    store = {"event_id": uuid.uuid4().hex, "message": f"db {DATABASE_URL} gone; token=abc123session",
             "request": {"headers": {"Cookie": "session=abc123session"}}, "extra": {"api_key": "key-xyz-987"}}
    with httpx.Client(base_url=gateway, timeout=30) as http:
        assert http.post("/api/v1/events", json=own, headers={"X-Errstream-Key": "webkey42"}).status_code == 200
        assert http.post("/api/42/store/", json=store, headers=auth).status_code == 200
        assert http.post("/api/v1/events", json=own_identity,
                         headers={"X-Errstream-Key": "webkey42"}).status_code == 200
    raw = read_topic(settings, settings.topic_errors, expect=3, timeout=60)
    assert len(raw) == 3
    text = orjson.dumps(raw).decode()
    assert "jane.doe@example.com" not in text and "S3cretP4ss" not in text
    identity = next(e for e in raw if e["message"] == "login failed")
    assert identity["user"]["id"].startswith("email:") and identity["fingerprint"][1] == identity["user"]["id"]
    raw = [e for e in raw if e is not identity]
    _no_secrets(orjson.dumps(raw).decode(), "the raw errors topic (JSON and store endpoints)")
    mine = next(e for e in raw if e["message"].startswith("cache"))
    assert mine["message"] == "cache redis://:[Filtered]@cache:6379/0 down for <email>"
    assert mine["request"]["query_string"] == "password=[Filtered]"
