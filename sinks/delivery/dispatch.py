"""Delivering alerts to webhooks and e-mail: rate limit, retries with backoff, one record per attempt.

Per destination, alerts go out in topic order; destinations are served
concurrently so a slow or failing receiver never delays the others.

- **Retries** (tenacity): network errors, timeouts, HTTP 408/429/5xx are retried
  with exponential backoff and jitter; a ``Retry-After`` header (seconds or an
  HTTP date) replaces the computed wait, capped at ``max_retry_after_seconds``.
  Other 4xx answers are final (``rejected``): repeating a request the receiver
  refuses cannot succeed.
- **Rate limit** (token bucket per destination): an alert over the limit is
  *dropped for that destination* with the outcome ``rate_limited``, never
  delayed: delaying would hold the consumer (and every later alert) behind a
  flood, and a pager that is minutes late is worse than one that summarises.
  The alert is still stored in ClickHouse and on the topic, and the next
  delivered message says how many were held back (Slack context line and the
  ``X-Errstream-Suppressed-Alerts`` header) — no flood, no silence.
- **Idempotency**: every attempt carries ``Idempotency-Key: <alert_id>``;
  alerts whose delivery to a destination already reached a final outcome
  (``delivered``, ``rejected``, ``failed``, ``rate_limited``) are not sent again
  when records are replayed or an alert is published twice.

Outcomes per attempt: ``delivered``; ``retry`` (retryable failure, another
attempt follows); ``failed`` (retryable failure on the last allowed attempt);
``rejected``; ``rate_limited`` (attempt 0, no request made).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiosmtplib
import httpx
from prometheus_client import Counter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from errstream_core.token_bucket import TokenBucket
from schemas.alerts import AlertEvent
from schemas.notifications import EmailDestination, WebhookDestination
from sinks.delivery.alert_text import safe_alert
from sinks.delivery.email import IssueFacts, build_email, send_email
from sinks.delivery.http_channels import build_request

Destination = WebhookDestination | EmailDestination

log = logging.getLogger("errstream.notifier")
# httpx logs every request's full URL at INFO; webhook URLs carry tokens.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

DELIVERIES = Counter("errstream_alert_deliveries", "Webhook delivery attempts", ["destination", "outcome"])

DELIVERY_COLUMNS = [
    "alert_id", "destination", "attempt", "attempted_at", "outcome", "http_status", "error", "latency_ms",
]
FINAL_OUTCOMES = ("delivered", "failed", "rejected", "rate_limited", "refused", "unknown_destination")
RETRYABLE_STATUS = frozenset({408, 425, 429})
RECORD_BATCH, RECORD_SECONDS = 20, 0.5  # bound on deliveries a crash can repeat


@dataclass
class DeliveryAttempt:
    alert_id: uuid.UUID
    destination: str
    attempt: int
    attempted_at: datetime
    outcome: str
    http_status: int = 0
    error: str = ""
    latency_ms: float = 0.0

    def row(self) -> list[Any]:
        return [self.alert_id, self.destination, self.attempt, self.attempted_at, self.outcome,
                self.http_status, self.error[:1000], self.latency_ms]


class DeliveryLog(Protocol):
    """Where attempts are recorded (ClickHouse ``alert_deliveries`` in the sink)."""

    async def record(self, attempts: Sequence[DeliveryAttempt]) -> None: ...

    async def finished(self, alert_ids: Sequence[uuid.UUID]) -> set[tuple[str, str]]:
        """(alert_id, destination) pairs that already reached a final outcome."""
        ...

    async def issue_facts(self, fingerprint: str) -> IssueFacts | None:
        """True counts and first/last seen of an issue, for e-mail bodies (None when unknown)."""
        ...


class RetryableDelivery(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("retryable delivery failure")
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _BackoffOrRetryAfter:
    """tenacity wait: the receiver's Retry-After when it gave one, else exponential backoff with jitter."""

    def __init__(self, dest: Destination) -> None:
        self.cap = dest.max_retry_after_seconds
        # Spelled with wait_exponential + wait_random: wait_exponential_jitter's `initial` is deprecated in
        # tenacity 9 and its replacement does not exist in 8.x.
        self.backoff = wait_exponential(
            multiplier=dest.backoff_initial_seconds, max=dest.backoff_max_seconds,
        ) + wait_random(0, dest.backoff_initial_seconds)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableDelivery) and exc.retry_after is not None:
            return min(exc.retry_after, self.cap)
        return float(self.backoff(state))


def _routed_to(alert: AlertEvent, destination: str) -> bool:
    """An alert rule's ``destinations`` (in ``details``) name where it goes; without them, everywhere."""
    names = alert.details.get("destinations")
    return not isinstance(names, list) or not names or destination in names


class WebhookNotifier:
    def __init__(self, destinations: Sequence[Destination], delivery_log: DeliveryLog,
                 http: httpx.AsyncClient | None = None, web_base_url: str = "") -> None:
        names = [d.name for d in destinations]
        if len(set(names)) != len(names):
            raise ValueError(f"webhook destination names must be unique: {names}")
        self.destinations = list(destinations)
        self.web_base_url = web_base_url
        self.delivery_log = delivery_log
        self.http = http or httpx.AsyncClient(follow_redirects=False)
        self.buckets = {
            d.name: TokenBucket(d.rate_limit_per_minute, d.rate_limit_burst) for d in self.destinations
        }
        self.suppressed: dict[str, int] = defaultdict(int)

    async def close(self) -> None:
        await self.http.aclose()

    async def deliver_all(self, alerts: Sequence[AlertEvent], seen_before: Sequence[uuid.UUID] = ()) -> None:
        """Deliver to every destination that wants them, skipping deliveries already final.

        Only ``seen_before`` alerts (already stored before this poll) can have delivery records, so only
        they are looked up: the common path costs no query.
        """
        if not alerts:
            return
        done = await self.delivery_log.finished(seen_before) if seen_before else set()
        unknown = [self._unknown_destinations(a, done) for a in alerts]
        if any(unknown):
            await self.delivery_log.record([attempt for attempts in unknown for attempt in attempts])
        await asyncio.gather(*(
            self._deliver_in_order(d, [a for a in alerts if d.accepts(a) and _routed_to(a, d.name)
                                       and (str(a.alert_id), d.name) not in done])
            for d in self.destinations
        ))

    def _unknown_destinations(self, alert: AlertEvent, done: set[tuple[str, str]]) -> list[DeliveryAttempt]:
        """A rule naming a destination that is not configured: recorded and logged, never dropped quietly.

        ``errstream alerts rules check|apply`` refuse such rules, but rules published before, or with another
        configuration than this process has, can still name one.
        """
        names = alert.details.get("destinations")
        if not isinstance(names, list):
            return []
        known = {d.name for d in self.destinations}
        out = []
        for name in sorted({str(n) for n in names} - known):
            if (str(alert.alert_id), name) in done:
                continue
            reason = (f"the alert rule routes it to {name!r}, which is not configured "
                      f"(configured: {', '.join(sorted(known)) or 'none'})")
            DELIVERIES.labels(name, "unknown_destination").inc()
            log.error("alert %s not delivered to %s: %s", alert.alert_id, name, reason)
            out.append(DeliveryAttempt(alert.alert_id, name, 0, datetime.now(UTC), "unknown_destination",
                                       error=reason))
        return out

    async def _deliver_in_order(self, dest: Destination, alerts: list[AlertEvent]) -> None:
        """Records go out in small batches: one insert per alert capped throughput at ~30 alerts/s, one per
        poll meant a crash repeated a whole poll's deliveries (receivers would have to dedup them all)."""
        attempts: list[DeliveryAttempt] = []
        last_flush = time.monotonic()
        for alert in alerts:
            attempts.extend(await self.deliver(dest, alert))
            if len(attempts) >= RECORD_BATCH or time.monotonic() - last_flush >= RECORD_SECONDS:
                await self.delivery_log.record(attempts)
                attempts, last_flush = [], time.monotonic()
        if attempts:
            await self.delivery_log.record(attempts)

    async def deliver(self, dest: Destination, alert: AlertEvent) -> list[DeliveryAttempt]:
        """Every outcome of one (alert, destination) as attempt records; never raises for the alert's fault.

        A failure to format or send one alert (an unforeseen character, a bug in a formatter) is recorded as
        ``refused`` with the reason, counted and logged, and the consumer moves on: one alert must never stop
        the process and, replayed after every restart, silence every channel.
        """
        try:
            return await self._deliver(dest, alert)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the alert's fault (or a bug): recorded, never fatal
            reason = dest.redact(f"could not format or send this alert: {type(exc).__name__}: {exc}")
            DELIVERIES.labels(dest.name, "refused").inc()
            log.error("alert %s to %s refused: %s", alert.alert_id, dest.name, reason)
            return [DeliveryAttempt(alert.alert_id, dest.name, 0, datetime.now(UTC), "refused", error=reason)]

    async def _deliver(self, dest: Destination, alert: AlertEvent) -> list[DeliveryAttempt]:
        alert = safe_alert(alert)
        if not self.buckets[dest.name].try_take():
            self.suppressed[dest.name] += 1
            DELIVERIES.labels(dest.name, "rate_limited").inc()
            log.warning("alert %s not sent to %s: over %g/min", alert.alert_id, dest.name, dest.rate_limit_per_minute)
            return [DeliveryAttempt(alert.alert_id, dest.name, 0, datetime.now(UTC), "rate_limited",
                                    error=f"over the rate limit of {dest.rate_limit_per_minute:g}/min")]
        suppressed = self.suppressed.pop(dest.name, 0)
        send: Any
        if isinstance(dest, EmailDestination):
            facts = await self._facts(alert)
            message = build_email(dest, alert, facts, self.web_base_url, suppressed)

            async def send(number: int) -> tuple[DeliveryAttempt, float | None]:
                return await self._mail(dest, alert, message, number)
        else:
            body, headers = build_request(dest, alert, suppressed)

            async def send(number: int) -> tuple[DeliveryAttempt, float | None]:
                return await self._post(dest, alert, body, headers, number)
        attempts: list[DeliveryAttempt] = []
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(dest.max_attempts), wait=_BackoffOrRetryAfter(dest),
                retry=retry_if_exception_type(RetryableDelivery),
            ):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    record, retry_after = await send(number)
                    attempts.append(record)
                    if record.outcome in ("retry", "failed"):
                        raise RetryableDelivery(retry_after)
        except RetryError:
            pass
        final = attempts[-1]
        if final.outcome != "delivered":
            log.warning("alert %s to %s %s after %d attempt(s): %s", alert.alert_id, dest.name, final.outcome,
                        len(attempts), final.error)
        return attempts

    async def _facts(self, alert: AlertEvent) -> IssueFacts | None:
        if not alert.fingerprint:
            return None
        try:
            return await self.delivery_log.issue_facts(alert.fingerprint)
        except Exception as exc:  # noqa: BLE001 - an e-mail without counts beats no e-mail
            log.warning("issue facts for %s unavailable (%s); sending the alert without them", alert.fingerprint,
                        type(exc).__name__)
            return None

    async def _mail(self, dest: EmailDestination, alert: AlertEvent, message: Any,
                    number: int) -> tuple[DeliveryAttempt, float | None]:
        attempted_at = datetime.now(UTC)
        started = time.perf_counter()
        last = number >= dest.max_attempts
        status, error = 0, ""
        try:
            await send_email(dest, message)
            outcome = "delivered"
        except aiosmtplib.SMTPResponseException as exc:
            status = exc.code
            # 4xx: try again later (greylisting, a full queue); 5xx: the server refuses (bad recipient, auth)
            outcome = ("failed" if last else "retry") if 400 <= exc.code < 500 else "rejected"
            error = dest.redact(f"SMTP {exc.code}: {exc.message}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:  # refused, DNS, TLS, timeouts
            outcome = "failed" if last else "retry"
            error = dest.redact(f"{type(exc).__name__}: {exc}")
        latency_ms = (time.perf_counter() - started) * 1000
        DELIVERIES.labels(dest.name, outcome).inc()
        return DeliveryAttempt(alert.alert_id, dest.name, number, attempted_at, outcome, status, error,
                               latency_ms), None

    async def _post(self, dest: WebhookDestination, alert: AlertEvent, body: bytes, headers: dict[str, str],
                    number: int) -> tuple[DeliveryAttempt, float | None]:
        attempted_at = datetime.now(UTC)
        started = time.perf_counter()
        last = number >= dest.max_attempts
        status, error, retry_after = 0, "", None
        try:
            response = await self.http.post(
                dest.url.get_secret_value(), content=body,
                headers={**headers, "X-Errstream-Delivery-Attempt": str(number)}, timeout=dest.timeout_seconds,
            )
        except httpx.HTTPError as exc:  # connection refused, DNS, TLS, timeouts
            outcome = "failed" if last else "retry"
            error = dest.redact(f"{type(exc).__name__}: {exc}")
        else:
            status = response.status_code
            if 200 <= status < 300:
                outcome = "delivered"
            elif status in RETRYABLE_STATUS or status >= 500:
                outcome = "failed" if last else "retry"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                error = dest.redact(f"HTTP {status}: {response.text[:200]}")
            else:
                outcome = "rejected"
                error = dest.redact(f"HTTP {status}: {response.text[:200]}")
        latency_ms = (time.perf_counter() - started) * 1000
        DELIVERIES.labels(dest.name, outcome).inc()
        return DeliveryAttempt(alert.alert_id, dest.name, number, attempted_at, outcome, status, error,
                               latency_ms), retry_after
