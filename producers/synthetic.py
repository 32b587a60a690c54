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
from typing import Any

from producers.capture import event_from_exception
from schemas.alerts import AlertEvent
from schemas.events import Breadcrumb, ErrorEvent, RequestInfo, User


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


# --- deep, realistic stacks: the worker's per-event cost is measured and its schema mirror tested on these ---
REALISTIC_STACK_DEPTH = 20


def _call_chain(depth: int) -> list[Callable[[int, random.Random], None]]:
    """``depth`` distinct functions, each calling the next, like a web stack (handler → service → repo …)."""
    source = "\n".join(
        f"def layer_{i}(fail, rng):\n    return {'_fail' if i == depth - 1 else f'layer_{i + 1}'}(fail, rng)\n"
        for i in range(depth)
    )
    namespace: dict[str, object] = {"_fail": _fail, "__name__": "shop.layers"}
    exec(compile(source, "/srv/shop/app/layers.py", "exec"), namespace)  # noqa: S102 - generated traffic code
    return [namespace[f"layer_{i}"] for i in range(depth)]  # type: ignore[misc]


def _fail(fail: int, rng: random.Random) -> None:
    _FAILURES[fail](rng)


def _missing_key(rng: random.Random) -> None:
    raise KeyError(f"user_{rng.randint(1, 10_000)}")


def _declined(rng: random.Random) -> None:
    raise ValueError(f"card declined for customer{rng.randint(1, 99)}@example.com amount {rng.randint(1, 900)}.00")


def _refused(rng: random.Random) -> None:
    raise ConnectionRefusedError(f"connect to 10.0.{rng.randint(0, 9)}.{rng.randint(1, 254)}:5432 refused")


_FAILURES = (_missing_key, _declined, _refused)


def realistic_events(count: int, *, seed: int = 11, start: datetime | None = None) -> list[bytes]:
    """``count`` serialised events (~5 kB), each with a ~20-frame in-app stack, tags, user, request, breadcrumbs.

    Deterministic for a seed. What a busy web service sends: the worker's cost per
    event (``errstream bench core``) and the schema mirror's agreement with the
    contract (tests) are measured on these, not on toy events.
    """
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    levels = ("error", "error", "warning", "critical", "info")
    layers = _call_chain(REALISTIC_STACK_DEPTH - 3)  # + realistic_events, _fail and the raiser
    out: list[bytes] = []
    for i in range(count):
        fail = i % len(_FAILURES)
        try:
            layers[0](fail, rng)
        except Exception as exc:  # noqa: BLE001 - every failure is the event we want
            event: ErrorEvent = event_from_exception(
                exc, service=("billing", "checkout", "auth")[i % 3], level=levels[i % len(levels)],
                release="1.4.2", timestamp=start + timedelta(milliseconds=i * 7),
                event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                user=User(id=f"u{rng.randint(1, 500)}", email=f"user{rng.randint(1, 500)}@example.com",
                          ip_address=f"192.0.2.{rng.randint(1, 254)}"),
                tags={"region": rng.choice(["eu-west-1", "us-east-1"]), "http.status": "500"},
                request=RequestInfo(method="POST", url=f"https://shop.example.com/pay?order={i}&token=abc",
                                    headers={"Authorization": "Bearer abc.def", "Accept": "application/json"}),
                breadcrumbs=[Breadcrumb(category="http", message=f"GET /api/items/{rng.randint(1, 999)}",
                                        data={"status": 200}) for _ in range(5)],
                context={"runtime": {"name": "CPython", "version": "3.11"}},
            )
            out.append(event.model_dump_json().encode())
    return out


def synthetic_alert(**overrides: Any) -> AlertEvent:
    """A spike alert as the detectors raise it (each field overridable): what follows detection is tested
    and benchmarked without running the detectors."""
    fp = overrides.pop("fingerprint", uuid.uuid4().hex)
    defaults: dict[str, Any] = {
        "kind": "spike", "severity": "error", "dedup_key": f"spike:billing:{fp}", "service": "billing",
        "fingerprint": fp, "title": "KeyError: 'cus_1234'", "message": "billing: 412 events in 1 min (baseline 38)",
        "trigger_event_id": uuid.uuid4(), "trigger_event_time": datetime.now(UTC) - timedelta(seconds=2),
        "details": {"count": 412, "baseline": 38.2},
    }
    return AlertEvent(**{**defaults, **overrides})
