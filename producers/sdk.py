"""The errstream Python SDK: one line to set up, and it can never hurt the application.

    import errstream
    errstream.init(service="checkout", environment="production", release="1.4.2")
    try:
        ...
    except Exception:
        errstream.capture_exception()

Promises, in order of importance:

1. No SDK entry point raises into the application: every public function and
   method catches everything and counts it instead.
2. The application's thread does little: it copies the exception's text and
   code locations and the scope reference, and appends to a bounded queue
   (``producers.transport``). Source lines, JSON and Kafka happen on a
   background thread.
3. Memory is bounded; when the broker is unreachable the oldest events are
   dropped and counted (``client.stats``).
"""

from __future__ import annotations

import logging
import random
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from errstream_core.scrub import Scrubber
from errstream_core.settings import Settings, get_settings
from producers.capture import CONTEXT_LINES, RawException, cut, exception_dicts, snapshot_exception
from producers.resources import ResourceSampler
from producers.scope import (  # noqa: F401 - facade
    Scope,
    breadcrumb,
    current_scope,
    otel_ids,
    set_context,
    set_correlation_id,
    set_tag,
    set_trace,
    set_user,
)
from producers.sessions import SessionCounter
from producers.transport import KafkaTransport
from schemas.events import ErrorEvent
from schemas.fast import convert_event, encode
from schemas.limits import MAX_BREADCRUMBS, MAX_FINGERPRINT_PARTS, MAX_MESSAGE, MAX_SHORT, MAX_TAGS
from schemas.sessions import SessionAggregate

log = logging.getLogger("errstream.sdk")
SDK_NAME = "errstream.python/0.1.0"
_LEVELS = {"debug": "debug", "info": "info", "warning": "warning", "warn": "warning", "error": "error",
           "critical": "critical", "fatal": "critical"}


class Pending(NamedTuple):
    """Everything captured on the application's thread; turned into JSON on the sender thread."""

    event_id: str
    timestamp: float
    level: str
    exceptions: list[RawException] | None
    handled: bool | None
    mechanism: str
    message: str | None
    logger: str | None
    scope: Scope
    breadcrumbs: tuple[dict[str, Any], ...]
    otel: tuple[str | None, str | None]
    overrides: Overrides | None


class Overrides(NamedTuple):
    """Per-call additions; ``None`` for the common call without them."""

    tags: Mapping[str, Any] | None
    user: Mapping[str, Any] | None
    fingerprint: list[str] | None
    extra: Mapping[str, Any] | None
    recovery: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, tags: Mapping[str, Any] | None, user: Mapping[str, Any] | None, fingerprint: list[str] | None,
           extra: Mapping[str, Any] | None, recovery: Mapping[str, Any] | None = None) -> Overrides | None:
        if tags is None and user is None and fingerprint is None and extra is None and recovery is None:
            return None
        return cls(dict(tags) if tags else None, dict(user) if user else None,
                   list(fingerprint) if fingerprint else None, dict(extra) if extra else None,
                   dict(recovery) if recovery else None)


class Client:
    """An explicit SDK client; ``errstream.init`` makes one and keeps it as the process's default."""

    def __init__(
        self,
        service: str,
        *,
        environment: str = "production",
        release: str | None = None,
        server_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        settings: Settings | None = None,
        queue_size: int = 10_000,
        max_breadcrumbs: int = MAX_BREADCRUMBS,
        shutdown_timeout: float = 2.0,
        transport_options: Mapping[str, Any] | None = None,
        scrub: bool = True,
        resources: bool = True,
        source_context: bool = True,
        include_locals: bool = True,
    ) -> None:
        """``scrub``: remove secrets and personal data (``errstream_core.scrub``) on the sender thread, before
        the event leaves the process; the worker scrubs again either way. ``False`` opts out.
        ``resources``: attach a snapshot of the process's and host's resources (``producers.resources``).
        ``source_context``: send the source lines around each frame's line (``producers.capture``).
        ``include_locals``: send the local variables of the in-app frames and the raising one, as bounded
        reprs; names that look sensitive (the scrubber's keys) are sent as ``[Filtered]`` whatever ``scrub``
        says, their values never copied. ``False`` turns either off."""
        # Fail at start-up, with pydantic's reason, rather than sending events the worker would dead-letter.
        ErrorEvent(service=service, environment=environment, release=release)
        self.service = service
        self.environment = environment
        self.release = release
        self.server_name = server_name or socket.gethostname()
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.settings = settings or get_settings()
        self.max_breadcrumbs = min(max_breadcrumbs, MAX_BREADCRUMBS)
        self.breadcrumbs: deque[dict[str, Any]] = deque(maxlen=self.max_breadcrumbs)
        self.shutdown_timeout = shutdown_timeout
        self.internal_errors = 0
        self.scrubber = Scrubber.from_settings(self.settings) if scrub else None
        self.context_lines = CONTEXT_LINES if source_context else 0
        keys = (self.scrubber or Scrubber.from_settings(self.settings)).config  # the deployment's sensitive keys
        self._sensitive_name = lru_cache(maxsize=4_096)(keys.is_sensitive_key) if include_locals else None
        self.resources = ResourceSampler() if resources else None
        self.transport = KafkaTransport(self.settings, self._serialise, queue_size=queue_size,
                                        **(transport_options or {}))
        # release health: requests per minute, started on the first request a middleware records
        self._sessions: SessionCounter | None = None
        self._session_transport: KafkaTransport | None = None
        self._sessions_lock = threading.Lock()

    @property
    def stats(self) -> dict[str, Any]:
        """queued / sent / dropped / failed / build_errors / connect_failures / connected / internal_errors."""
        return {**self.transport.stats.as_dict(), "internal_errors": self.internal_errors,
                "pending": self.transport.pending()}

    # --- capture (application thread) -----------------------------------------------------
    def capture_exception(
        self,
        error: BaseException | None = None,
        *,
        level: str = "error",
        handled: bool | None = True,
        mechanism: str = "generic",
        message: str | None = None,
        logger: str | None = None,
        tags: Mapping[str, Any] | None = None,
        user: Mapping[str, Any] | None = None,
        fingerprint: list[str] | None = None,
        extra: Mapping[str, Any] | None = None,
        recovery: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Queue an event for ``error`` (default: the exception being handled); returns its id or None.

        ``recovery``: whether the application recovered (``schemas.events.Recovery``); ``producers.recovery``
        fills it for the common patterns."""
        try:
            if error is None:
                error = sys.exc_info()[1]
                if error is None:
                    return None
            return self._enqueue(level, snapshot_exception(error, self._sensitive_name), handled, mechanism,
                                 message, logger,
                                 Overrides.of(tags, user, fingerprint, extra, recovery))
        except Exception:
            self.internal_errors += 1
            return None

    def capture_message(self, message: str, *, level: str = "info", logger: str | None = None,
                        tags: Mapping[str, Any] | None = None, user: Mapping[str, Any] | None = None,
                        fingerprint: list[str] | None = None, extra: Mapping[str, Any] | None = None) -> str | None:
        try:
            return self._enqueue(level, None, None, "generic", str(message), logger,
                                 Overrides.of(tags, user, fingerprint, extra))
        except Exception:
            self.internal_errors += 1
            return None

    def add_breadcrumb(self, message: str | None = None, *, category: str | None = None, level: str = "info",
                       type: str = "default", data: Mapping[str, Any] | None = None) -> None:
        try:
            buf = current_scope().breadcrumbs
            (self.breadcrumbs if buf is None else buf).append(
                breadcrumb(message, category=category, level=level, type=type, data=data)
            )
        except Exception:
            self.internal_errors += 1

    def _enqueue(self, level: str, exceptions: list[RawException] | None, handled: bool | None, mechanism: str,
                 message: str | None, logger: str | None, overrides: Overrides | None) -> str:
        scope = current_scope()
        crumbs = tuple(self.breadcrumbs if scope.breadcrumbs is None else scope.breadcrumbs)
        otel = otel_ids() if scope.trace_id is None else (None, None)
        event_id = _event_id()
        self.transport.submit(Pending(event_id, time.time(), level, exceptions, handled, mechanism, message,
                                      logger, scope, crumbs, otel, overrides))
        return event_id

    def record_request(self, outcome: str, user: str | None = None) -> None:
        """Count one request (``ok``, ``errored`` or ``crashed``) for error rates; a few dict updates."""
        try:
            counter = self._sessions
            if counter is None:
                with self._sessions_lock:
                    if self._sessions is None:
                        self._session_transport = KafkaTransport(
                            self.settings, _serialise_aggregate, queue_size=1_000,
                            topic=self.settings.topic_sessions)
                        self._sessions = SessionCounter(self.service, self.environment, self.release,
                                                        self._session_transport.submit)
                    counter = self._sessions
            counter.record(outcome, user)
        except Exception:
            self.internal_errors += 1

    def flush(self, timeout: float = 2.0) -> bool:
        try:
            if self._sessions is not None and self._session_transport is not None:
                self._sessions.flush()
                self._session_transport.flush(timeout)
            return self.transport.flush(timeout)
        except Exception:
            self.internal_errors += 1
            return False

    def close(self, timeout: float | None = None) -> None:
        try:
            if self._sessions is not None and self._session_transport is not None:
                self._sessions.flush()
                self._session_transport.close(self.shutdown_timeout if timeout is None else timeout)
            self.transport.close(self.shutdown_timeout if timeout is None else timeout)
        except Exception:
            self.internal_errors += 1

    # --- serialisation (sender thread) ----------------------------------------------------
    def build_event(self, p: Pending) -> dict[str, Any]:
        """The event in the JSON shape of ``schemas.ErrorEvent``, already within its limits."""
        scope = p.scope
        o = p.overrides or _NO_OVERRIDES
        tags = {**self.tags, **scope.tags, **{str(k): str(v) for k, v in (o.tags or {}).items()}}
        contexts = {**scope.contexts, **({"extra": o.extra} if o.extra else {})}
        event: dict[str, Any] = {
            "event_id": p.event_id,
            "timestamp": datetime.fromtimestamp(p.timestamp, UTC).isoformat(),
            "service": self.service,
            "environment": self.environment,
            "release": self.release,
            "level": _LEVELS.get(p.level, "error"),
            "platform": "python",
            "server_name": cut(self.server_name, MAX_SHORT),
            "logger": cut(p.logger, MAX_SHORT),
            "message": cut(p.message, MAX_MESSAGE),
            "exceptions": (exception_dicts(p.exceptions, p.handled, p.mechanism, self.context_lines)
                           if p.exceptions else []),
            "tags": {cut(k, MAX_SHORT): cut(v, MAX_SHORT) for k, v in list(tags.items())[:MAX_TAGS]},
            "context": dict(list(contexts.items())[:MAX_TAGS]),
            "breadcrumbs": [
                {**c, "timestamp": datetime.fromtimestamp(c["timestamp"], UTC).isoformat(),
                 "message": cut(c.get("message"), MAX_MESSAGE)}
                for c in p.breadcrumbs[-MAX_BREADCRUMBS:]
            ],
            "trace_id": scope.trace_id or p.otel[0],
            "span_id": scope.span_id or p.otel[1],
            "parent_span_id": scope.parent_span_id,
            "correlation_id": cut(scope.correlation_id, MAX_SHORT),
            "sdk": SDK_NAME,
        }
        user = o.user or scope.user
        if user:
            event["user"] = {k: cut(str(v), MAX_SHORT) for k, v in user.items()
                             if k in ("id", "email", "username", "ip_address") and v is not None}
        if scope.request:
            event["request"] = dict(scope.request)
        if o.fingerprint:
            event["fingerprint"] = [cut(str(part), MAX_SHORT) for part in o.fingerprint][:MAX_FINGERPRINT_PARTS]
        if o.recovery:
            event["recovery"] = o.recovery
        if self.resources is not None:
            event["resources"] = self.resources.snapshot()
        return event

    def _serialise(self, p: Pending) -> tuple[bytes | None, bytes]:
        data = orjson.dumps(self.build_event(p), default=str)  # str() for whatever JSON cannot hold
        if self.scrubber is not None:
            try:
                return p.event_id.encode(), encode(self.scrubber.scrub(convert_event(orjson.loads(data))))
            except Exception:  # an event the schema refuses: the worker dead-letters it with the reason
                pass
        return p.event_id.encode(), data


_NO_OVERRIDES = Overrides(None, None, None, None)
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def _event_id() -> str:
    """A random (version 4) UUID as 32 hex digits; uuid.uuid4() reads os.urandom, 7x slower on the hot path.

    ``random`` is reseeded after fork by CPython, so forked workers do not repeat ids.
    """
    return f"{(random.getrandbits(128) & _V4_CLEAR) | _V4_SET:032x}"

def _serialise_aggregate(aggregate: SessionAggregate) -> tuple[bytes | None, bytes]:
    return aggregate.service.encode(), aggregate.model_dump_json().encode()


# --- the process-wide default client ----------------------------------------------------------
_client: Client | None = None


def set_client(client: Client | None) -> Client | None:
    """Make ``client`` the process's default (``errstream.init`` does, through ``producers.setup``)."""
    global _client
    previous, _client = _client, client
    return previous


def get_client() -> Client | None:
    return _client


def capture_exception(error: BaseException | None = None, **kwargs: Any) -> str | None:
    client = _client
    return client.capture_exception(error, **kwargs) if client is not None else None


def capture_message(message: str, **kwargs: Any) -> str | None:
    client = _client
    return client.capture_message(message, **kwargs) if client is not None else None


def add_breadcrumb(message: str | None = None, **kwargs: Any) -> None:
    client = _client
    if client is not None:
        client.add_breadcrumb(message, **kwargs)


def flush(timeout: float = 2.0) -> bool:
    client = _client
    return client.flush(timeout) if client is not None else True
