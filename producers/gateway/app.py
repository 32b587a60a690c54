"""The gateway's Starlette application.

Endpoints:

* ``POST /api/{project_id}/envelope/`` — Sentry envelopes (what current SDKs send).
* ``POST /api/{project_id}/store/`` — Sentry's legacy single-event endpoint.
* ``POST /api/v1/events`` — our own schema: one ``ErrorEvent`` object or a list (all or nothing).
* ``GET /healthz``, ``GET /metrics`` (Prometheus text).

Every refusal is a 4xx/5xx with ``{"detail": ...}`` and is counted by reason;
accepted events are published to ``errors`` through one long-lived
``ErrorPublisher`` and acknowledged by the broker before the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from errstream.settings import Settings
from producers.gateway.body import decode_body, legacy_store_body, read_limited
from producers.gateway.errors import Rejected
from producers.gateway.projects import Project, Projects, dsn_key, sentry_auth_key
from producers.gateway.sentry import EVENT_ITEM_TYPES, convert_sentry_event, loads_or_reject, parse_envelope
from producers.publisher import ErrorPublisher
from schemas.events import ErrorEvent
from schemas.limits import MAX_EVENT_BYTES

log = logging.getLogger("errstream.gateway")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter("errstream_gateway_events_accepted", "Events published to the errors topic",
                                ["endpoint"], registry=self.registry)
        self.rejected = Counter("errstream_gateway_requests_rejected", "Requests refused, by reason",
                                ["reason"], registry=self.registry)
        self.ignored = Counter("errstream_gateway_envelope_items_ignored",
                               "Envelope items accepted but not stored (sessions, transactions, ...)",
                               ["type"], registry=self.registry)


class Gateway:
    def __init__(self, settings: Settings, publisher: ErrorPublisher | None = None) -> None:
        self.settings = settings
        self.projects = Projects(settings.gateway_projects)
        self.publisher = publisher  # made in the lifespan: aiokafka needs the server's running loop
        self.metrics = Metrics()

    # --- shared steps ----------------------------------------------------------------------
    async def _body(self, request: Request) -> bytes:
        raw = await read_limited(request.stream(), request.headers.get("content-length"),
                                 self.settings.gateway_max_body_bytes)
        return decode_body(raw, request.headers.get("content-encoding"), self.settings.gateway_max_decompressed_bytes)

    @staticmethod
    def _sentry_key(request: Request) -> str | None:
        return sentry_auth_key(request.headers.get("x-sentry-auth")) or request.query_params.get("sentry_key")

    async def _publish(self, events: list[ErrorEvent]) -> None:
        try:
            async with asyncio.timeout(self.settings.gateway_publish_timeout):
                publisher = self.publisher
                assert publisher is not None, "the app's lifespan starts the publisher"
                await asyncio.gather(*(
                    publisher.publish_raw(e.model_dump_json().encode(), key=e.event_id.hex.encode()) for e in events
                ))
        except Exception as exc:
            raise Rejected(503, "broker_unavailable", f"could not publish to Kafka: {type(exc).__name__}",
                           {"Retry-After": "5"}) from None

    @staticmethod
    def _client_ip(request: Request) -> str | None:
        return request.client.host if request.client else None

    # --- endpoints -------------------------------------------------------------------------
    async def envelope(self, request: Request) -> Response:
        project_id = request.path_params["project_id"]
        key = self._sentry_key(request)
        # Authenticate before reading when we can; browser SDKs only put the DSN in the envelope header.
        project = self.projects.authenticate(key, project_id) if key else None
        header, items = parse_envelope(await self._body(request))
        project = project or self.projects.authenticate(dsn_key(header.get("dsn")), project_id)
        events: list[ErrorEvent] = []
        for item_header, payload in items:
            kind = item_header["type"]
            if kind not in EVENT_ITEM_TYPES:
                self.metrics.ignored.labels(kind[:40]).inc()
                continue
            if len(payload) > MAX_EVENT_BYTES:
                raise Rejected(413, "event_too_large", f"event of {len(payload)} bytes exceeds {MAX_EVENT_BYTES}")
            events.append(convert_sentry_event(loads_or_reject(payload, "event item"), service=project.service,
                                               client_ip=self._client_ip(request)))
        project.admit(len(events))
        await self._publish(events)
        self.metrics.accepted.labels("envelope").inc(len(events))
        event_id = header.get("event_id") or (events[0].event_id.hex if events else None)
        return JSONResponse({"id": event_id} if event_id else {})

    async def store(self, request: Request) -> Response:
        project_id = request.path_params["project_id"]
        project = self.projects.authenticate(self._sentry_key(request), project_id)
        body = legacy_store_body(await self._body(request), self.settings.gateway_max_decompressed_bytes)
        if len(body) > MAX_EVENT_BYTES:
            raise Rejected(413, "event_too_large", f"event of {len(body)} bytes exceeds {MAX_EVENT_BYTES}")
        event = convert_sentry_event(loads_or_reject(body, "event"), service=project.service,
                                     client_ip=self._client_ip(request))
        project.admit(1)
        await self._publish([event])
        self.metrics.accepted.labels("store").inc()
        return JSONResponse({"id": event.event_id.hex})

    async def events(self, request: Request) -> Response:
        project = self.projects.authenticate(_own_key(request))
        doc = loads_or_reject(await self._body(request), "body")
        docs = doc if isinstance(doc, list) else [doc]
        events = [_own_event(i, d, project) for i, d in enumerate(docs)]
        project.admit(len(events))
        await self._publish(events)
        self.metrics.accepted.labels("events").inc(len(events))
        return JSONResponse({"accepted": len(events), "ids": [e.event_id.hex for e in events]})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics_text(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def guarded(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except Rejected as r:
                self.metrics.rejected.labels(r.reason).inc()
                return JSONResponse({"detail": r.detail}, status_code=r.status, headers=r.headers)
            except Exception:
                log.exception("gateway: unexpected error")
                self.metrics.rejected.labels("internal_error").inc()
                return JSONResponse({"detail": "internal error; see the gateway's log"}, status_code=500)

        return endpoint


def _own_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    return request.headers.get("x-errstream-key") or bearer or sentry_auth_key(
        request.headers.get("x-sentry-auth")) or request.query_params.get("sentry_key")


def _own_event(index: int, doc: Any, project: Project) -> ErrorEvent:
    if not isinstance(doc, dict):
        raise Rejected(400, "invalid_event", f"event #{index} must be a JSON object")
    if "service" not in doc:
        doc["service"] = project.service
    try:
        return ErrorEvent.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise Rejected(400, "invalid_event", f"event #{index} is invalid (nothing was published): {problems}") from None


def create_app(settings: Settings, publisher: ErrorPublisher | None = None) -> Starlette:
    gw = Gateway(settings, publisher)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw.publisher = gw.publisher or ErrorPublisher(settings)
        async with gw.publisher:
            yield

    app = Starlette(
        routes=[
            Route("/api/{project_id}/envelope/", gw.guarded(gw.envelope), methods=["POST"]),
            Route("/api/{project_id}/store/", gw.guarded(gw.store), methods=["POST"]),
            Route("/api/v1/events", gw.guarded(gw.events), methods=["POST"]),
            Route("/healthz", gw.healthz, methods=["GET"]),
            Route("/metrics", gw.metrics_text, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.gateway = gw
    return app


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host or settings.gateway_host, port=port or settings.gateway_port,
                log_level="warning", access_log=False)
