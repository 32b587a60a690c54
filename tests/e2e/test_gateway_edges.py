"""The gateway at its edges: hostile nesting, keys bound to services, what a Sentry SDK's request carries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest

from errstream_core.settings import GatewayProject, Settings
from tests.support.gateway import running_gateway
from tests.support.kafka import read_topic

pytestmark = pytest.mark.e2e

AUTH7 = {"X-Sentry-Auth": "Sentry sentry_key=key7, sentry_version=7"}


@pytest.fixture
def gateway(settings: Settings) -> Iterator[httpx.Client]:
    settings.gateway_projects = {
        "7": GatewayProject(public_key="key7", service="web"),
        "8": GatewayProject(public_key="key8", service="inventory"),
        "9": GatewayProject(public_key="key9", service="shop", services=["shop-worker", "shop-cron"]),
    }
    with running_gateway(settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def _deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def test_json_nested_100000_levels_is_a_400_with_the_reason_on_every_endpoint(gateway: httpx.Client) -> None:
    arrays = b"[" * 100_000 + b"]" * 100_000
    deep_objects = _deep(100_000)
    # Just under orjson's own limit of 1,024 levels: msgspec and pydantic recurse in Python there.
    near_limit = b'{"event_id":"' + uuid.uuid4().hex.encode() + b'","extra":' + _deep(1_020) + b"}"
    bodies = {
        "store": [arrays, deep_objects, b'{"extra":' + deep_objects + b"}", near_limit],
        "envelope": [b'{}\n{"type":"event"}\n' + b'{"contexts":{"x":' + deep_objects + b"}}\n",
                     b'{}\n{"type":"event"}\n' + near_limit + b"\n", b"{}\n" + arrays + b"\n"],
        "events": [arrays, b'{"service":"web","context":' + deep_objects + b"}",
                   b'{"service":"web","context":' + _deep(1_020) + b"}"],
    }
    for route, payloads in bodies.items():
        path = {"store": "/api/7/store/", "envelope": "/api/7/envelope/", "events": "/api/v1/events"}[route]
        for body in payloads:
            r = gateway.post(path, content=body, headers={**AUTH7, "Content-Type": "application/json"})
            assert r.status_code == 400, (route, r.status_code, r.text[:300])
            detail = r.json()["detail"]
            assert "deep" in detail or "depth" in detail, detail
    assert gateway.get("/healthz").json()["status"] == "ok"  # and it still serves


def test_a_key_may_only_post_for_its_own_services(gateway: httpx.Client, settings: Settings) -> None:
    foreign = gateway.post("/api/v1/events", json={"service": "inventory", "message": "forged"},
                           headers={"X-Errstream-Key": "key7"})
    assert foreign.status_code == 403
    assert "inventory" in foreign.json()["detail"] and "project 7" in foreign.json()["detail"]
    batch = gateway.post("/api/v1/events", json=[{"service": "web", "message": "mine"},
                                                 {"service": "inventory", "message": "forged"}],
                         headers={"X-Errstream-Key": "key7"})
    assert batch.status_code == 403  # all or nothing: the valid one is not published either
    ok = [
        gateway.post("/api/v1/events", json={"service": "web", "message": "own"}, headers={"X-Errstream-Key": "key7"}),
        gateway.post("/api/v1/events", json={"message": "defaulted"}, headers={"X-Errstream-Key": "key7"}),
        gateway.post("/api/v1/events", json={"service": "inventory", "message": "theirs"},
                     headers={"X-Errstream-Key": "key8"}),
        gateway.post("/api/v1/events", json=[{"service": "shop-worker", "message": "w"},
                                             {"service": "shop-cron", "message": "c"}],
                     headers={"X-Errstream-Key": "key9"}),
    ]
    assert [r.status_code for r in ok] == [200, 200, 200, 200], [r.text for r in ok]
    assert gateway.post("/api/v1/events", json={"service": "web", "message": "x"},
                        headers={"X-Errstream-Key": "key9"}).status_code == 403
    got = read_topic(settings, settings.topic_errors, expect=5, timeout=30)
    assert sorted((e["service"], e["message"]) for e in got) == [
        ("inventory", "theirs"), ("shop-cron", "c"), ("shop-worker", "w"), ("web", "defaulted"), ("web", "own")]
    assert "forged" not in orjson.dumps(got).decode()


def test_an_event_over_the_size_limit_is_a_413_on_every_endpoint(gateway: httpx.Client, settings: Settings) -> None:
    """Before: /api/v1/events answered 200 to a 1.5 MB event, which the worker then dead-lettered as too_large."""
    big_context = {f"k{i}": "x" * 10_000 for i in range(40)} | {"more": ["y" * 10_000] * 110}  # ~1.5 MB
    own = {"service": "web", "message": "huge", "context": big_context}
    sentry = {"event_id": uuid.uuid4().hex, "message": "huge", "contexts": {"big": big_context}}
    requests = {
        "/api/v1/events": orjson.dumps([{"service": "web", "message": "small, same batch"}, own]),
        "/api/7/store/": orjson.dumps(sentry),
        "/api/7/envelope/": b'{}\n{"type":"event"}\n' + orjson.dumps(sentry) + b"\n",
    }
    for path, body in requests.items():
        assert len(body) > 1_400_000
        r = gateway.post(path, content=body, headers={**AUTH7, "Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.status_code, r.text[:300])
        assert "limit is 1000000" in r.json()["detail"] or "exceeds 1000000" in r.json()["detail"], r.json()
    assert read_topic(settings, settings.topic_errors, expect=1, timeout=3) == []  # nothing of it published
