"""Ingestion end to end: real producers → gateway/SDK → Kafka → worker → sink → ClickHouse."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from errstream_core.settings import GatewayProject, Settings
from producers.integrations import ErrstreamASGIMiddleware, ErrstreamHandler
from producers.sdk import Client as SdkClient
from stream_processors.fingerprint import CHAIN_LINK_END, digest
from tests.support.gateway import running_gateway
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e

COLUMNS = ("event_id", "service", "environment", "release", "level", "fingerprint", "exception_type", "title",
           "message", "logger", "server_name", "user_id", "tags", "trace_id", "span_id", "correlation_id",
           "request_method", "request_url", "in_app_frames", "exceptions", "breadcrumbs")


def stored_events(ch: Client, settings: Settings) -> list[dict[str, Any]]:
    db = settings.clickhouse_database
    try:
        result = ch.query(f"SELECT {', '.join(COLUMNS)} FROM {db}.error_events FINAL ORDER BY timestamp")
    except Exception:  # the sink creates the tables on start
        return []
    return [dict(zip(COLUMNS, row, strict=True)) for row in result.result_rows]


def wait_events(ch: Client, settings: Settings, n: int, services: dict[str, Service]) -> list[dict[str, Any]]:
    return wait_for(lambda: stored_events(ch, settings), lambda rows: len(rows) >= n, 90,
                    f"{n} events in error_events",
                    diagnostics=lambda: services["worker"].output()[-2000:] + services["sink"].output()[-2000:])


@pytest.fixture
def gateway(settings: Settings) -> Iterator[str]:
    settings.gateway_projects = {"42": GatewayProject(public_key="shopkey42", service="shop")}
    with running_gateway(settings) as url:
        yield url


def test_unmodified_sentry_sdk_reaches_clickhouse_through_the_gateway(
    settings: Settings, ch: Client, services: dict[str, Service], gateway: str
) -> None:
    dsn = gateway.replace("http://", "http://shopkey42@") + "/42"
    run = subprocess.run(
        [sys.executable, "-c", f"from tests.support.apps import sentry_shop; sentry_shop.main({dsn!r})"],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr

    rows = wait_events(ch, settings, 4, services)
    by_type = {r["exception_type"]: r for r in rows}
    assert set(by_type) == {"PaymentDeclined", "KeyError", "ValueError", ""}

    declined = by_type["PaymentDeclined"]
    assert declined["service"] == "shop" and declined["environment"] == "staging"
    assert declined["release"] == "shop@2.0.1" and declined["server_name"] == "shop-1"
    assert declined["title"] == "PaymentDeclined: card declined for amount -5"
    assert declined["in_app_frames"] == ["tests.support.apps.sentry_shop.main", "tests.support.apps.sentry_shop.charge"]
    assert declined["user_id"] == "u-42"
    assert declined["tags"]["region"] == "eu-west-1"
    assert declined["fingerprint"] == digest(  # version 2, the service; each exception: type, in-app frames, a separator
        ["v2", "shop", "exception", "PaymentDeclined", "tests.support.apps.sentry_shop.main", "tests.support.apps.sentry_shop.charge",
         CHAIN_LINK_END])
    assert len(declined["trace_id"]) == 32  # sentry-sdk always sends a propagation context
    raising = orjson.loads(declined["exceptions"])[-1]["stacktrace"][-1]
    assert raising["function"] == "charge" and raising["in_app"] is True
    assert raising["context_line"].strip() == "raise PaymentDeclined(f\"card declined for amount {order['amount']}\")"
    crumbs = orjson.loads(declined["breadcrumbs"])
    assert [(c["category"], c["message"], c["level"]) for c in crumbs] == [
        ("checkout", "checkout started", "info"), ("shop.payments", "payment provider slow", "warning")]

    lookup = by_type["KeyError"]  # scope.fingerprint overrides grouping; scope tags stay on their event
    assert lookup["fingerprint"] == digest(["custom", "customer-lookup-failures"])
    assert lookup["tags"]["customer_tier"] == "gold" and "customer_tier" not in declined["tags"]

    chained = by_type["ValueError"]  # grouped and titled by the root cause, so the title is stable per issue
    assert chained["title"] == "ValueError: invalid literal for int() with base 10: 'three'"
    assert [e["type"] for e in orjson.loads(chained["exceptions"])] == ["ValueError", "RuntimeError"]

    message = by_type[""]
    assert message["message"] == "inventory low" and message["level"] == "warning"


def test_own_sdk_logging_handler_and_asgi_middleware_reach_clickhouse(
    settings: Settings, ch: Client, services: dict[str, Service]
) -> None:
    client = SdkClient("inventory", environment="test", release="7.1", settings=settings, server_name="inv-1",
                       tags={"team": "stock"})
    logger = logging.getLogger("inventory.jobs")
    logger.setLevel(logging.INFO)
    handler = ErrstreamHandler(client)
    logger.addHandler(handler)

    async def reserve(request: Request) -> JSONResponse:
        sku = request.path_params["sku"]
        stock: dict[str, int] = {}
        return JSONResponse({"left": stock[sku] - 1})

    app = ErrstreamASGIMiddleware(Starlette(routes=[Route("/reserve/{sku}", reserve, methods=["POST"])]), client)
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    async def call_app() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
            return await http.post("/reserve/sku-9?qty=2", headers={
                "traceparent": f"00-{trace_id}-{span_id}-01", "x-request-id": "req-77",
                "authorization": "Bearer secret-token"})

    try:
        import asyncio

        assert asyncio.run(call_app()).status_code == 500
        logger.info("nightly sync started")
        try:
            {"a": 1}["b"]
        except KeyError:
            logger.exception("nightly sync failed for %s", "warehouse-3")
        assert client.flush(20), client.stats
    finally:
        logger.removeHandler(handler)
        client.close()
    assert client.stats["sent"] == 2 and client.stats["dropped"] == 0

    rows = wait_events(ch, settings, 2, services)
    web = next(r for r in rows if r["request_method"])
    assert web["service"] == "inventory" and web["release"] == "7.1" and web["server_name"] == "inv-1"
    assert web["exception_type"] == "KeyError" and web["title"] == "KeyError: 'sku-9'"
    assert web["request_url"] == "http://shop.test/reserve/sku-9"
    assert web["trace_id"] == trace_id and web["correlation_id"] == "req-77"
    assert web["in_app_frames"][-1] == "tests.e2e.test_ingest_e2e.test_own_sdk_logging_handler_and_asgi_middleware_" \
                                       "reach_clickhouse.<locals>.reserve"
    assert all(not f.startswith("starlette") for f in web["in_app_frames"])
    assert web["tags"]["team"] == "stock"
    exc = orjson.loads(web["exceptions"])[-1]
    assert exc["mechanism"] == {"type": "asgi", "handled": False}
    # the line keeps its indentation, as Sentry's SDKs send it, so it aligns with pre/post_context
    frame = exc["stacktrace"][-1]
    assert frame["context_line"] == '        return JSONResponse({"left": stock[sku] - 1})'
    assert frame["pre_context"] and frame["post_context"] is not None

    job = next(r for r in rows if r["logger"] == "inventory.jobs")
    assert job["message"] == "nightly sync failed for warehouse-3" and job["level"] == "error"
    assert job["exception_type"] == "KeyError" and job["request_method"] == ""
    crumbs = orjson.loads(job["breadcrumbs"])
    assert [c["message"] for c in crumbs] == ["nightly sync started"]  # the web request had its own buffer
    assert job["fingerprint"] == digest(
        ["v2", job["service"], "exception", "KeyError",
         "tests.e2e.test_ingest_e2e.test_own_sdk_logging_handler_and_asgi_middleware_reach_clickhouse",
         CHAIN_LINK_END])
