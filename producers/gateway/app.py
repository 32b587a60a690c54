"""The gateway's ASGI application: a plain-ASGI hot path for ingestion, Starlette for the rest.

Endpoints:

* ``POST /api/{project_id}/envelope/`` — Sentry envelopes (what current SDKs send).
* ``POST /api/{project_id}/store/`` — Sentry's legacy single-event endpoint.
* ``POST /api/v1/events`` — our own schema: one ``ErrorEvent`` object or a list (all or nothing).
* ``POST /v1/traces``, ``POST /v1/logs`` — OTLP/HTTP (protobuf or JSON): exceptions recorded on spans and
  error log records (``otlp_mapping``); the key as for our own endpoint (``X-Errstream-Key`` or
  ``Authorization: Bearer``), refused records reported as OTLP partial success.
* ``GET /healthz``, ``GET /metrics`` (Prometheus text).

Every refusal is a 4xx/5xx with ``{"detail": ...}`` and is counted by reason;
accepted events are published to ``errors`` through one long-lived
``ErrorPublisher`` and acknowledged by the broker before the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from errstream_core.scrub import Scrubber
from errstream_core.settings import Settings
from producers.gateway.body import decode_body, legacy_store_body
from producers.gateway.errors import Rejected
from producers.gateway.incoming import Incoming, Receive, Send, send_bytes, send_json
from producers.gateway.otlp_mapping import Mapped, map_logs, map_traces
from producers.gateway.otlp_wire import (
    Reply,
    decode_logs,
    decode_traces,
    error_reply,
    logs_reply,
    traces_reply,
)
from producers.gateway.projects import Project, Projects, dsn_key, sentry_auth_key
from producers.gateway.sentry import EVENT_ITEM_TYPES, SESSION_ITEM_TYPES, loads_or_reject, parse_envelope
from producers.gateway.sentry_typed import convert_sentry_payload
from producers.publisher import ErrorPublisher
from producers.sessions import from_sentry_aggregates, from_sentry_session
from schemas.fast import ErrorEvent, convert_event, encode
from schemas.limits import MAX_EVENT_BYTES
from schemas.sessions import SessionAggregate

log = logging.getLogger("errstream.gateway")
MAX_BATCH_EVENTS = 1_000  # per POST /api/v1/events
# Envelope item types Sentry SDKs send besides events; anything else is counted as "other" (bounded labels).
KNOWN_ITEM_TYPES = frozenset({
    "session", "sessions", "transaction", "client_report", "attachment", "profile", "profile_chunk", "check_in",
    "replay_event", "replay_recording", "user_report", "feedback", "statsd", "metric_meta", "span", "log",
    "otel_log",
})


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
        self.otlp_ignored = Counter("errstream_gateway_otlp_records_ignored",
                                    "OTLP spans and log records accepted but not errors, by reason",
                                    ["reason"], registry=self.registry)
        self.otlp_rejected = Counter("errstream_gateway_otlp_records_rejected",
                                     "OTLP spans and log records refused inside an accepted request (partial success)",
                                     ["signal"], registry=self.registry)
        self.otlp_stacktraces = Counter("errstream_gateway_otlp_stacktraces",
                                        "exception.stacktrace texts parsed into frames, or not (type and message only)",
                                        ["language", "outcome"], registry=self.registry)
        # Children resolved once: .labels() is a lock and a dict lookup on every request otherwise.
        self.accepted_by = {name: self.accepted.labels(name)
                            for name in ("envelope", "store", "events", "otlp_traces", "otlp_logs")}
        # The same for the OTLP counters, as their labels first appear (a few reasons, languages and outcomes).
        self._otlp_ignored_by: dict[str, Any] = {}
        self._otlp_stacktraces_by: dict[tuple[str, str], Any] = {}

    def count_otlp(self, signal: str, mapped: Mapped) -> None:
        for reason, n in mapped.ignored.items():
            child = self._otlp_ignored_by.get(reason)
            if child is None:
                child = self._otlp_ignored_by[reason] = self.otlp_ignored.labels(reason)
            child.inc(n)
        for labels, n in mapped.stacktraces.items():
            child = self._otlp_stacktraces_by.get(labels)
            if child is None:
                child = self._otlp_stacktraces_by[labels] = self.otlp_stacktraces.labels(*labels)
            child.inc(n)
        if mapped.rejected:
            self.otlp_rejected.labels(signal).inc(mapped.rejected)


class Gateway:
    def __init__(self, settings: Settings, publisher: ErrorPublisher | None = None) -> None:
        self.settings = settings
        self.projects = Projects(settings.gateway_projects)
        # Secrets and personal data go before Kafka, as Sentry's Relay removes them before its queue.
        self.scrubber = Scrubber.from_settings(settings)
        self.publisher = publisher  # set once connected (see `connect`): aiokafka needs the server's loop
        self.metrics = Metrics()
        self._kafka_checked_at, self._kafka_ok = 0.0, False  # /healthz asks the broker at most once a second

    # --- shared steps ----------------------------------------------------------------------
    async def _body(self, request: Incoming) -> bytes:
        raw = await request.body(self.settings.gateway_max_body_bytes)
        return decode_body(raw, request.header("content-encoding"), self.settings.gateway_max_decompressed_bytes)

    @staticmethod
    def _sentry_key(request: Incoming) -> str | None:
        return sentry_auth_key(request.header("x-sentry-auth")) or request.query("sentry_key")

    async def kafka_reachable(self) -> bool:
        publisher = self.publisher
        if publisher is None:
            return False
        now = time.monotonic()
        if now - self._kafka_checked_at >= 1.0:
            self._kafka_checked_at = now
            self._kafka_ok = await publisher.reachable(timeout=2.0)
        return self._kafka_ok

    async def _publish(self, events: list[ErrorEvent]) -> None:
        publisher = self.publisher
        if publisher is None:
            raise Rejected(503, "broker_unavailable", "Kafka is not reachable yet; retry later", {"Retry-After": "5"})
        # Encoded before publishing: an event the encoder refuses (RecursionError on deep nesting) is the
        # client's fault, not the broker's.
        scrub = self.scrubber.scrub
        records = [(encode(scrub(e)), e.event_id.hex.encode()) for e in events]
        # The worker's limit, on the record it would read, for every endpoint: answered here with 413
        # rather than accepted with 200 and dead-lettered as too_large (nothing of the batch is published).
        for i, (value, _) in enumerate(records):
            if len(value) > MAX_EVENT_BYTES:
                which = f"event #{i}" if len(records) > 1 else "event"
                raise Rejected(413, "event_too_large", f"{which} is {len(value)} bytes as stored; the limit is "
                                                       f"{MAX_EVENT_BYTES} (nothing was published)")
        try:  # the publisher fails the call after settings.gateway_publish_timeout
            if len(records) == 1:  # the usual envelope: skip gather's task per event
                value, key = records[0]
                await publisher.publish_coalesced(value, key=key)
            else:
                await asyncio.gather(*(publisher.publish_coalesced(value, key=key) for value, key in records))
        except Exception as exc:
            raise Rejected(503, "broker_unavailable", f"could not publish to Kafka: {type(exc).__name__}",
                           {"Retry-After": "5"}) from None

    async def _publish_sessions(self, aggregates: list[SessionAggregate]) -> None:
        publisher = self.publisher
        if publisher is None:
            raise Rejected(503, "broker_unavailable", "Kafka is not reachable yet; retry later", {"Retry-After": "5"})
        try:
            await asyncio.gather(*(publisher.publish_to(self.settings.topic_sessions, a.model_dump_json().encode(),
                                                        key=a.service.encode()) for a in aggregates))
        except Exception as exc:
            raise Rejected(503, "broker_unavailable", f"could not publish to Kafka: {type(exc).__name__}",
                           {"Retry-After": "5"}) from None

    async def connect(self) -> None:
        """Start the publisher, retrying with backoff: the gateway serves (503) while Kafka is down at start."""
        delay = 0.5
        while True:
            # Batches of up to 256 KB: one record batch carries every event that arrived in a loop
            # iteration, instead of one per 8 events at aiokafka's 16 KB default. zstd, not the SDK's lz4:
            # aiokafka compresses lz4 at level 9 (a 256 KB state set up per batch), which cost more CPU
            # than zstd's level 3 at every batch size of 8 events or more, for a third of the ratio.
            publisher = ErrorPublisher(self.settings, ack_timeout=self.settings.gateway_publish_timeout,
                                       max_batch_bytes=262_144, compression="zstd")
            try:
                await publisher.__aenter__()
            except Exception as exc:
                log.warning("gateway: Kafka %s unreachable (%s); retrying in %.1f s",
                            self.settings.kafka_bootstrap, exc, delay)
                with contextlib.suppress(Exception):
                    await publisher.__aexit__(None, None, None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self.publisher = publisher
            return

    # --- endpoints -------------------------------------------------------------------------
    async def envelope(self, request: Incoming, project_id: str) -> tuple[int, Any]:
        key = self._sentry_key(request)
        # Authenticate before reading when we can; browser SDKs only put the DSN in the envelope header.
        project = self.projects.authenticate(key, project_id) if key else None
        header, items = parse_envelope(await self._body(request))
        project = project or self.projects.authenticate(dsn_key(header.get("dsn")), project_id)
        events: list[ErrorEvent] = []
        sessions: list[SessionAggregate] = []
        for item_header, payload in items:
            kind = item_header["type"]
            if kind in SESSION_ITEM_TYPES:  # release health: the denominator of error rates
                doc = loads_or_reject(payload, f"{kind} item")
                sessions.extend(from_sentry_aggregates(doc, project.service) if kind == "sessions"
                                else [a for a in [from_sentry_session(doc, project.service)] if a is not None])
                continue
            if kind not in EVENT_ITEM_TYPES:
                self.metrics.ignored.labels(kind if kind in KNOWN_ITEM_TYPES else "other").inc()
                continue
            if len(payload) > MAX_EVENT_BYTES:
                raise Rejected(413, "event_too_large", f"event of {len(payload)} bytes exceeds {MAX_EVENT_BYTES}")
            events.append(convert_sentry_payload(payload, service=project.service, client_ip=request.client_ip))
        project.admit(len(events))
        await self._publish(events)
        if sessions:
            await self._publish_sessions(sessions)
        self.metrics.accepted_by["envelope"].inc(len(events))
        event_id = header.get("event_id") or (events[0].event_id.hex if events else None)
        return 200, ({"id": event_id} if event_id else {})

    async def store(self, request: Incoming, project_id: str) -> tuple[int, Any]:
        project = self.projects.authenticate(self._sentry_key(request), project_id)
        body = legacy_store_body(await self._body(request), self.settings.gateway_max_decompressed_bytes)
        if len(body) > MAX_EVENT_BYTES:
            raise Rejected(413, "event_too_large", f"event of {len(body)} bytes exceeds {MAX_EVENT_BYTES}")
        event = convert_sentry_payload(body, service=project.service, client_ip=request.client_ip, what="event")
        project.admit(1)
        await self._publish([event])
        self.metrics.accepted_by["store"].inc()
        return 200, {"id": event.event_id.hex}

    async def events(self, request: Incoming, _: str) -> tuple[int, Any]:
        project = self.projects.authenticate(_own_key(request))
        doc = loads_or_reject(await self._body(request), "body")
        docs = doc if isinstance(doc, list) else [doc]
        if len(docs) > MAX_BATCH_EVENTS:
            raise Rejected(413, "batch_too_large", f"a batch of {len(docs)} events exceeds {MAX_BATCH_EVENTS}")
        events = [_own_event(i, d, project) for i, d in enumerate(docs)]
        project.admit(len(events))
        await self._publish(events)
        self.metrics.accepted_by["events"].inc(len(events))
        return 200, {"accepted": len(events), "ids": [e.event_id.hex for e in events]}

    async def otlp_traces(self, request: Incoming, _: str) -> tuple[int, Any]:
        project = self.projects.authenticate(_own_key(request))  # before reading the body
        body, kind = decode_traces(await self._body(request), request.header("content-type"))
        mapped = map_traces(body, project)
        await self._publish_otlp(project, mapped, "otlp_traces")
        return 200, traces_reply(kind, mapped.rejected, mapped.error_message)

    async def otlp_logs(self, request: Incoming, _: str) -> tuple[int, Any]:
        project = self.projects.authenticate(_own_key(request))
        body, kind = decode_logs(await self._body(request), request.header("content-type"))
        mapped = map_logs(body, project)
        await self._publish_otlp(project, mapped, "otlp_logs")
        return 200, logs_reply(kind, mapped.rejected, mapped.error_message)

    async def _publish_otlp(self, project: Project, mapped: Mapped, endpoint: str) -> None:
        project.admit(len(mapped.events))
        if mapped.events:
            await self._publish(mapped.events)
        self.metrics.count_otlp(endpoint.removeprefix("otlp_"), mapped)
        self.metrics.accepted_by[endpoint].inc(len(mapped.events))

    async def handle(self, route: str, project_id: str, scope: MutableMapping[str, Any], receive: Receive,
                     send: Send) -> None:
        request = Incoming(scope, receive)
        try:
            status, doc = await getattr(self, route)(request, project_id)
            if isinstance(doc, Reply):
                await send_bytes(send, status, doc.body, doc.content_type)
            else:
                await send_json(send, status, doc)
        except Rejected as r:
            self.metrics.rejected.labels(r.reason).inc()
            if route.startswith("otlp_"):  # OTLP exporters read a Status message in their own encoding
                reply = error_reply(r.status, r.detail, request.header("content-type"))
                await send_bytes(send, r.status, reply.body, reply.content_type, r.headers)
            else:
                await send_json(send, r.status, {"detail": r.detail}, r.headers)
        except RecursionError:
            # orjson stops at 1,024 levels, but msgspec and pydantic recurse in Python below that: a body
            # nested deeply enough is the client's fault and must read as such, not as a 500.
            self.metrics.rejected.labels("too_deep").inc()
            await send_json(send, 400, {"detail": "JSON is nested too deeply (limit about 1,000 levels)"})
        except Exception:
            log.exception("gateway: unexpected error")
            self.metrics.rejected.labels("internal_error").inc()
            await send_json(send, 500, {"detail": "internal error; see the gateway's log"})


def _own_key(request: Incoming) -> str | None:
    auth = request.header("authorization") or ""
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    return request.header("x-errstream-key") or bearer or sentry_auth_key(
        request.header("x-sentry-auth")) or request.query("sentry_key")


def _own_event(index: int, doc: Any, project: Project) -> ErrorEvent:
    if not isinstance(doc, dict):
        raise Rejected(400, "invalid_event", f"event #{index} must be a JSON object")
    if "service" not in doc:
        doc["service"] = project.service
    else:
        project.check_service(doc["service"])
    try:
        return convert_event(doc)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise Rejected(400, "invalid_event", f"event #{index} is invalid (nothing was published): {problems}") from None
    except ValueError as exc:
        raise Rejected(400, "invalid_event", f"event #{index} is invalid (nothing was published): {exc}") from None


_INGEST_ROUTE = re.compile(r"^(?:/api/(?:(?P<project>[^/]+)/(?P<kind>envelope|store)/?|v1/(?P<own>events)/?)"
                           r"|/v1/(?P<otlp>traces|logs)/?)$")


class GatewayApp:
    """ASGI entry: POSTs to the ingestion routes go straight to ``Gateway``; the rest to Starlette."""

    def __init__(self, gateway: Gateway, rest: Starlette) -> None:
        self.gateway = gateway
        self.rest = rest
        self.state = rest.state

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _INGEST_ROUTE.match(scope["path"])
            if match:
                route = match["own"] or match["kind"] or f"otlp_{match['otlp']}"
                await self.gateway.handle(route, match["project"] or "", scope, receive, send)
                return
        await self.rest(scope, receive, send)


def create_app(settings: Settings, publisher: ErrorPublisher | None = None) -> GatewayApp:
    gw = Gateway(settings, publisher)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if gw.publisher is not None:  # injected (tests, benchmarks)
            async with gw.publisher:
                yield
            return
        connecting = asyncio.create_task(gw.connect())
        try:
            yield
        finally:
            connecting.cancel()
            if gw.publisher is not None:
                await gw.publisher.__aexit__(None, None, None)

    async def healthz(request: Request) -> Response:
        """Alive always; ``kafka`` says whether events can be accepted now (else they get 503).

        Asked of the broker (a metadata request, at most one per second however often probes come): before,
        it said only that the publisher had started once, and read ``true`` through a broker outage while
        every event got 503.
        """
        return JSONResponse({"status": "ok", "kafka": await gw.kafka_reachable()})

    async def metrics_text(request: Request) -> Response:
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    rest = Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics_text)], lifespan=lifespan)
    rest.state.gateway = gw
    return GatewayApp(gw, rest)


def server_config(settings: Settings, host: str | None = None, port: int | None = None) -> Any:
    """The uvicorn configuration ``errstream gateway`` runs (a ``uvicorn.Config``)."""
    import uvicorn

    proxies = settings.gateway_trusted_proxies
    return uvicorn.Config(create_app(settings), host=host or settings.gateway_host,
                          port=port or settings.gateway_port, log_level="warning", access_log=False,
                          server_header=False, date_header=False, proxy_headers=bool(proxies),
                          forwarded_allow_ips=proxies or None)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    class _Server(uvicorn.Server):
        """Says where it listens once bound (uvicorn's own line is hidden at log level warning)."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                for server in self.servers:
                    for sock in server.sockets:
                        bound_host, bound_port = sock.getsockname()[:2]
                        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
                        print(f"errstream gateway listening on http://{shown}:{bound_port}", flush=True)

    _Server(server_config(settings, host, port)).run()
