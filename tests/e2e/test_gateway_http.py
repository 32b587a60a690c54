"""The gateway's HTTP contract: what it accepts, what it refuses and why, on the real server and broker."""

from __future__ import annotations

import base64
import gzip
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from errstream_core.settings import GatewayProject, Settings
from tests.support.gateway import free_port, running_gateway
from tests.support.kafka import read_topic
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e

AUTH = {"X-Sentry-Auth": "Sentry sentry_key=key7, sentry_version=7, sentry_client=test/1.0"}


@pytest.fixture
def gateway(settings: Settings) -> Iterator[httpx.Client]:
    settings.gateway_projects = {
        "7": GatewayProject(public_key="key7", service="web", services=["billing"]),
        "8": GatewayProject(public_key="key8", service="slow", rate_limit=1, burst=2),
    }
    settings.gateway_max_body_bytes = 64_000
    settings.gateway_max_decompressed_bytes = 256_000
    with running_gateway(settings) as url, httpx.Client(base_url=url, timeout=20) as http:
        yield http


def sentry_event(**fields: object) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4().hex, "level": "error", "platform": "python", "timestamp": 1763900000.5,
        "exception": {"values": [{"type": "ValueError", "value": "bad input", "module": "builtins",
                                  "stacktrace": {"frames": [{"filename": "app.py", "module": "app", "function": "run",
                                                             "lineno": 3, "in_app": True}]}}]},
        **fields,
    }


def envelope(*items: tuple[dict[str, object], bytes], header: dict[str, object] | None = None) -> bytes:
    lines = [orjson.dumps(header or {})]
    for item_header, payload in items:
        lines += [orjson.dumps(item_header), payload]
    return b"\n".join(lines) + b"\n"


def metrics(http: httpx.Client) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for s in family.samples:
            label = ",".join(f"{v}" for v in s.labels.values())
            out[f"{s.name}[{label}]"] = s.value
    return out


def test_sentry_envelope_gzip_with_ignored_items(gateway: httpx.Client, settings: Settings) -> None:
    event = sentry_event(tags=[["region", "eu"], ["build", 42]], user={"id": 7, "ip_address": "{{auto}}"},
                         contexts={"trace": {"trace_id": "a" * 32, "span_id": "b" * 16}, "os": {"name": "Linux"}},
                         logentry={"message": "failed %s", "params": ["x"]}, fingerprint=["{{ default }}", "eu"])
    body = envelope(({"type": "event"}, orjson.dumps(event)),
                    ({"type": "session"}, b'{"sid":"1","init":true,"started":"2026-11-30T10:00:05Z","status":"ok",'
                                          b'"attrs":{"release":"web@1"}}'),
                    ({"type": "client_report", "length": 2}, b"{}"),
                    header={"event_id": event["event_id"]})
    r = gateway.post("/api/7/envelope/", content=gzip.compress(body),  # no proxy is trusted by default
                     headers={**AUTH, "Content-Encoding": "gzip", "X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": event["event_id"]}

    [published] = read_topic(settings, settings.topic_errors, expect=1, timeout=30)
    assert published["event_id"] == str(uuid.UUID(str(event["event_id"])))
    assert published["service"] == "web" and published["message"] == "failed x"
    assert published["tags"] == {"region": "eu", "build": "42"}
    assert published["user"]["id"] == "7" and published["user"]["ip_address"] == "127.0.0.1"
    assert (published["trace_id"], published["span_id"]) == ("a" * 32, "b" * 16)
    assert published["context"] == {"os": {"name": "Linux"}}
    assert published["fingerprint"] == ["{{ default }}", "eu"]  # resolved by the worker's grouping
    assert published["exceptions"][0]["stacktrace"][0]["in_app"] is True
    m = metrics(gateway)
    assert "errstream_gateway_envelope_items_ignored_total[session]" not in m  # read: release health
    [session] = read_topic(settings, settings.topic_sessions, expect=1, timeout=30)
    assert (session["service"], session["release"], session["started"]) == ("web", "web@1", 1)
    assert m["errstream_gateway_envelope_items_ignored_total[client_report]"] == 1
    assert m["errstream_gateway_events_accepted_total[envelope]"] == 1


def test_client_address_from_a_trusted_proxy_only(settings: Settings) -> None:
    settings.gateway_projects = {"7": GatewayProject(public_key="key7", service="web")}
    settings.gateway_trusted_proxies = "127.0.0.1"
    event = sentry_event(user={"id": 7, "ip_address": "{{auto}}"})
    with running_gateway(settings) as url:
        r = httpx.post(f"{url}/api/7/store/", content=orjson.dumps(event),
                       headers={**AUTH, "X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 200, r.text
    [published] = read_topic(settings, settings.topic_errors, expect=1, timeout=30)
    assert published["user"]["ip_address"] == "203.0.113.9"


def test_legacy_store_and_own_batch_endpoint(gateway: httpx.Client, settings: Settings) -> None:
    legacy = base64.b64encode(zlib.compress(orjson.dumps(sentry_event(message="old sdk"))))
    r = gateway.post("/api/7/store/?sentry_key=key7", content=legacy)
    assert r.status_code == 200, r.text
    r = gateway.post("/api/7/store/", content=zlib.compress(orjson.dumps(sentry_event())),
                     headers={**AUTH, "Content-Encoding": "deflate"})
    assert r.status_code == 200, r.text

    batch = [{"service": "billing", "message": "one"}, {"message": "two, service from the key's project"}]
    r = gateway.post("/api/v1/events", json=batch, headers={"Authorization": "Bearer key7"})
    assert r.status_code == 200 and r.json()["accepted"] == 2
    got = read_topic(settings, settings.topic_errors, expect=4, timeout=30)
    assert sorted((e["service"], e["message"] or "") for e in got) == [
        ("billing", "one"), ("web", ""), ("web", "old sdk"), ("web", "two, service from the key's project")]


def test_refusals_are_4xx_with_reasons_and_counted(gateway: httpx.Client, settings: Settings) -> None:
    ok_body = envelope(({"type": "event"}, orjson.dumps(sentry_event())))

    r = gateway.post("/api/7/envelope/", content=ok_body)
    assert r.status_code == 401 and "sentry_key" in r.json()["detail"]
    r = gateway.post("/api/7/envelope/", content=ok_body, headers={"X-Sentry-Auth": "Sentry sentry_key=nope"})
    assert r.status_code == 403 and r.json()["detail"] == "unknown public key"
    r = gateway.post("/api/8/envelope/", content=ok_body, headers=AUTH)  # key7 belongs to project 7
    assert r.status_code == 403 and "project 8" in r.json()["detail"]

    r = gateway.post("/api/7/envelope/", content=b"x" * 70_000, headers=AUTH)
    assert r.status_code == 413 and "exceeds the limit of 64000" in r.json()["detail"]
    bomb = gzip.compress(b"\n" * 5_000_000)  # 5 MB of newlines, a few KB compressed
    r = gateway.post("/api/7/envelope/", content=bomb, headers={**AUTH, "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in r.json()["detail"]
    r = gateway.post("/api/7/envelope/", content=b"\x00garbage", headers={**AUTH, "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "not valid gzip" in r.json()["detail"]
    r = gateway.post("/api/7/envelope/", content=ok_body, headers={**AUTH, "Content-Encoding": "zstd"})
    assert r.status_code == 415

    r = gateway.post("/api/7/envelope/", content=b'{}\n{"type":"event"}\n{"exception": [', headers=AUTH)
    assert r.status_code == 400 and r.json()["detail"].startswith("event item is not valid JSON")
    r = gateway.post("/api/7/store/", content=b"{not json", headers=AUTH)
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = gateway.post("/api/v1/events", json=[{"message": "fine"}, {"level": "apocalyptic"}],
                     headers={"X-Errstream-Key": "key7"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("event #1 is invalid (nothing was published): level:")

    r = gateway.post("/api/v1/events", json=[{"message": "x"}] * 1001, headers={"X-Errstream-Key": "key7"})
    assert r.status_code == 413 and r.json()["detail"] == "a batch of 1001 events exceeds 1000"

    m = metrics(gateway)
    for reason, n in [("batch_too_large", 1), ("missing_key", 1), ("unknown_key", 1), ("wrong_project", 1), ("body_too_large", 1),
                      ("decompressed_too_large", 1), ("bad_compression", 1), ("unsupported_encoding", 1),
                      ("invalid_json", 2), ("invalid_event", 1)]:
        assert m[f"errstream_gateway_requests_rejected_total[{reason}]"] == n, reason
    assert read_topic(settings, settings.topic_errors, expect=1, timeout=3) == []  # nothing got through


def test_rate_limit_answers_429_with_retry_after(gateway: httpx.Client) -> None:
    auth = {"X-Sentry-Auth": "Sentry sentry_key=key8"}
    codes = [gateway.post("/api/8/store/", content=orjson.dumps(sentry_event()), headers=auth) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 429, 429]  # burst of 2, then 1 event/s
    limited = codes[2]
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["X-Sentry-Rate-Limits"] == "1::project"
    assert "over its limit of 1 events/s" in limited.json()["detail"]
    r = gateway.post("/api/v1/events", json=[{"message": "x"}] * 3, headers={"X-Errstream-Key": "key8"})
    assert r.status_code == 429 and "exceed project 8's burst of 2" in r.json()["detail"]


def test_gateway_answers_503_while_kafka_is_unreachable(settings: Settings) -> None:
    down = settings.model_copy(update={
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "gateway_projects": {"7": GatewayProject(public_key="key7")},
    })
    with running_gateway(down, wait_for_kafka=False) as url, httpx.Client(base_url=url, timeout=20) as http:
        started = time.monotonic()
        r = http.post("/api/7/store/", content=orjson.dumps(sentry_event()), headers=AUTH)
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert "Kafka" in r.json()["detail"] and time.monotonic() - started < 2
        assert http.get("/healthz").json() == {"status": "ok", "kafka": False}


def test_errstream_gateway_command_serves_sentry_store(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    projects = '{"5": {"public_key": "cli5", "service": "cli-app"}}'
    gateway = Service("gateway", settings, tmp_path, extra_env={"ERRSTREAM_GATEWAY_PROJECTS": projects},
                      args=["--port", str(port)]).start()
    try:
        url = f"http://127.0.0.1:{port}"

        def kafka_ready() -> bool:
            try:
                return bool(httpx.get(f"{url}/healthz").json()["kafka"])
            except httpx.TransportError:
                return False

        wait_for(kafka_ready, bool, 30, "the gateway and its Kafka connection", diagnostics=gateway.output)
        r = httpx.post(f"{url}/api/5/store/?sentry_key=cli5", content=orjson.dumps(sentry_event(message="via cli")))
        assert r.status_code == 200, r.text
        [event] = read_topic(settings, settings.topic_errors, expect=1, timeout=30)
        assert (event["service"], event["message"]) == ("cli-app", "via cli")
        assert f"listening on http://127.0.0.1:{port}" in gateway.output()
    finally:
        assert gateway.stop(15) in (0, -15)  # graceful; uvicorn re-raises SIGTERM after shutting down
        assert "Traceback" not in gateway.output()


def test_recovery_from_sentry_sdks_and_our_json_is_carried_and_hostile_values_are_400(
    gateway: httpx.Client, settings: Settings
) -> None:
    tags = {"recovery.outcome": "recovered", "recovery.method": "fallback", "recovery.attempts": "2"}
    r = gateway.post("/api/7/store/", content=orjson.dumps(sentry_event(tags=tags)), headers=AUTH)
    assert r.status_code == 200, r.text
    hostile = sentry_event(contexts={"recovery": {"successful": True, "duration_ms": -1}})
    r = gateway.post("/api/7/store/", content=orjson.dumps(hostile), headers=AUTH)
    assert r.status_code == 400 and "recovery.duration_ms" in r.json()["detail"]
    r = gateway.post("/api/v1/events", json=[{"message": "x", "recovery": {"attempted": False, "successful": True}}],
                     headers={"X-Errstream-Key": "key7"})
    assert r.status_code == 400 and "recovery" in r.json()["detail"]
    [published] = read_topic(settings, settings.topic_errors, expect=1, timeout=20)
    assert published["recovery"] == {"attempted": True, "successful": True, "method": "fallback", "attempts": 2,
                                     "duration_ms": None}
