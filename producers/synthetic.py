"""Realistic traffic for demos, tests and benchmarks.

The stacks come from real exceptions raised by small "services" below, so
grouping sees what it sees in production: the same bug with other values, the
same message from different call sites, chained causes.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from producers.capture import event_from_exception
from schemas.events import ErrorEvent, User


class PaymentDeclined(Exception):
    pass


class UpstreamTimeout(Exception):
    pass


def _billing_charge(rng: random.Random) -> None:
    amount = rng.randint(1, 500)
    raise PaymentDeclined(f"card declined for amount {amount}.00 EUR")


def _billing_lookup(rng: random.Random) -> None:
    customers: dict[str, int] = {}
    customers[f"cus_{rng.randint(1000, 9999)}"]  # noqa: B018 - raises KeyError like real code does


def _checkout_total(rng: random.Random) -> None:
    items = rng.randint(0, 0)
    _ = 100 / items


def _checkout_inventory(rng: random.Random) -> None:
    try:
        raise ConnectionRefusedError(f"connect to 10.0.{rng.randint(0, 9)}.{rng.randint(1, 254)}:5432 refused")
    except ConnectionRefusedError as exc:
        raise UpstreamTimeout("inventory service unavailable") from exc


def _auth_token(rng: random.Random) -> None:
    token: dict[str, object] | None = None
    token["exp"]  # type: ignore[index]  # noqa: B018


def _auth_parse(rng: random.Random) -> None:
    int(f"user-{rng.randint(1, 99)}")


SERVICES: dict[str, list[tuple[Callable[[random.Random], None], str, float]]] = {
    # service: [(raiser, level, weight)]
    "billing": [(_billing_charge, "error", 6.0), (_billing_lookup, "critical", 1.0)],
    "checkout": [(_checkout_total, "error", 3.0), (_checkout_inventory, "error", 2.0)],
    "auth": [(_auth_token, "error", 2.0), (_auth_parse, "warning", 4.0)],
}


def synthetic_event(
    rng: random.Random,
    service: str | None = None,
    *,
    timestamp: datetime | None = None,
    release: str = "1.4.2",
    trace_id: str | None = None,
) -> ErrorEvent:
    service = service or rng.choice(sorted(SERVICES))
    raisers = SERVICES[service]
    raiser, level, _ = rng.choices(raisers, weights=[w for *_, w in raisers])[0]
    try:
        raiser(rng)
    except Exception as exc:
        user_no = rng.randint(1, 200)
        return event_from_exception(
            exc,
            service=service,
            level=level,
            release=release,
            timestamp=timestamp or datetime.now(UTC),
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            user=User(id=f"u{user_no}", email=f"user{user_no}@example.com"),
            tags={"region": rng.choice(["eu-west-1", "us-east-1"]), "http.status": rng.choice(["500", "502"])},
            server_name=f"{service}-{rng.randint(1, 3)}",
            trace_id=trace_id or uuid.UUID(int=rng.getrandbits(128)).hex,
        )
    raise AssertionError("raisers always raise")


def synthetic_stream(
    count: int, *, seed: int = 7, services: list[str] | None = None, start: datetime | None = None,
    spread: timedelta = timedelta(minutes=5),
) -> Iterator[ErrorEvent]:
    """``count`` events spread evenly over ``spread`` from ``start``; deterministic for a seed."""
    rng = random.Random(seed)
    start = start or datetime.now(UTC) - spread
    names = services or sorted(SERVICES)
    step = spread / max(count, 1)
    for i in range(count):
        yield synthetic_event(rng, names[i % len(names)], timestamp=start + step * i)
