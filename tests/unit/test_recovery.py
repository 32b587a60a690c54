"""Recovery on the event: the contract refuses hostile values clearly, the worker dead-letters them with the
field's name, the gateway maps what Sentry SDKs can say, and the SDK's helpers send one event per episode."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from errstream_core.settings import Settings
from producers import sdk
from producers.gateway.errors import Rejected
from producers.gateway.sentry_typed import convert_sentry_payload
from producers.recovery import Recovering, fallback, method_name, retry
from producers.sdk import Client
from schemas import ErrorEvent
from schemas.fast import decode_event
from stream_processors.event_processor import EventProcessor

GOOD = {"attempted": True, "successful": True, "method": "circuit_breaker", "attempts": 3, "duration_ms": 1250}

HOSTILE: list[tuple[Any, str]] = [
    ("yes", "recovery"),                                        # not an object
    ([1, 2], "recovery"),
    ({"successful": "maybe"}, "recovery.successful"),
    ({"attempted": False, "successful": True}, "recovery"),    # recovered without trying
    ({"attempted": False, "duration_ms": 5}, "recovery"),
    ({"method": "Retry Now!"}, "recovery.method"),             # not a lower-case name
    ({"method": "x" * 65}, "recovery.method"),
    ({"method": ""}, "recovery.method"),
    ({"attempts": -1}, "recovery.attempts"),
    ({"attempts": 10**30}, "recovery.attempts"),
    ({"duration_ms": -5}, "recovery.duration_ms"),
    ({"duration_ms": 2**32}, "recovery.duration_ms"),          # beyond the UInt32 column
    ({"duration_ms": 1.5}, "recovery.duration_ms"),
    ({"duration_ms": "soon"}, "recovery.duration_ms"),
]


def _event(recovery: Any) -> dict[str, Any]:
    return {"service": "payment", "message": "charge failed", "recovery": recovery}


def test_a_recovery_round_trips_through_the_contract_and_the_mirror() -> None:
    model = ErrorEvent.model_validate(_event(GOOD))
    assert model.recovery is not None and model.recovery.successful and model.recovery.attempts == 3
    mirror = decode_event(orjson.dumps(_event(GOOD)))
    assert mirror.recovery is not None and mirror.recovery.method == "circuit_breaker"
    assert orjson.loads(model.model_dump_json())["recovery"] == GOOD
    defaults = ErrorEvent.model_validate(_event({})).recovery
    assert defaults is not None and (defaults.attempted, defaults.successful, defaults.method) == (True, False, "retry")
    assert ErrorEvent.model_validate({"service": "payment"}).recovery is None


@pytest.mark.parametrize(("recovery", "where"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_recovery_values_are_refused_with_the_field_named(recovery: Any, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        ErrorEvent.model_validate(_event(recovery))
    assert any(".".join(str(p) for p in e["loc"]).startswith(where) for e in info.value.errors())
    with pytest.raises((ValueError, Exception)):
        decode_event(json.dumps(_event(recovery)))  # the mirror refuses too: never more lenient


@pytest.mark.parametrize(("recovery", "where"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_the_worker_dead_letters_hostile_recovery_with_a_reason(recovery: Any, where: str) -> None:
    out = EventProcessor().process(json.dumps(_event(recovery)).encode(), partition=0, offset=7)
    assert out.processed is None and out.dead_letter is not None
    assert out.dead_letter.reason == "invalid_event"
    assert "recovery" in out.dead_letter.detail


def test_the_worker_forwards_a_valid_recovery_and_nothing_when_absent() -> None:
    processor = EventProcessor()
    out = processor.process(orjson.dumps(_event(GOOD)))
    assert out.processed is not None
    assert orjson.loads(out.encoded)["event"]["recovery"] == GOOD
    plain = processor.process(orjson.dumps({"service": "payment", "message": "x"}))
    assert orjson.loads(plain.encoded)["event"]["recovery"] is None


def _sentry(**extra: Any) -> bytes:
    return orjson.dumps({"event_id": "a" * 32, "level": "error", "platform": "javascript",
                         "exception": {"values": [{"type": "TimeoutError", "value": "upstream timed out",
                                                   "mechanism": {"type": "generic", "handled": True}}]},
                         **extra})


def test_the_gateway_maps_a_sentry_recovery_context() -> None:
    event = convert_sentry_payload(_sentry(contexts={"recovery": GOOD, "os": {"name": "Linux"}}), service="payment")
    assert event.recovery is not None and event.recovery.method == "circuit_breaker" and event.recovery.successful
    assert "recovery" not in event.context and "os" in event.context  # moved, not copied


def test_the_gateway_maps_sentry_recovery_tags() -> None:
    tags = {"recovery.outcome": "recovered", "recovery.method": "fallback", "recovery.attempts": "2",
            "recovery.duration_ms": "340"}
    event = convert_sentry_payload(_sentry(tags=tags), service="payment")
    assert event.recovery is not None
    assert (event.recovery.successful, event.recovery.method, event.recovery.attempts,
            event.recovery.duration_ms) == (True, "fallback", 2, 340)
    failed = convert_sentry_payload(_sentry(tags={"recovery.outcome": "failed"}), service="payment")
    assert failed.recovery is not None and failed.recovery.attempted and not failed.recovery.successful
    assert convert_sentry_payload(_sentry(), service="payment").recovery is None


@pytest.mark.parametrize("payload", [
    {"contexts": {"recovery": {"duration_ms": -1}}},
    {"contexts": {"recovery": {"method": "DROP TABLE"}}},
    {"tags": {"recovery.outcome": "perhaps"}},
    {"tags": {"recovery.outcome": "recovered", "recovery.attempts": "many"}},
])
def test_the_gateway_refuses_hostile_sentry_recovery_with_a_400_naming_the_field(payload: dict[str, Any]) -> None:
    with pytest.raises(Rejected) as info:
        convert_sentry_payload(_sentry(**payload), service="payment")
    assert info.value.status == 400 and "recovery" in info.value.detail


# --- the SDK's helpers: the events they queue, without a broker ----------------------------------------------
@pytest.fixture
def sent() -> Any:
    client = Client("payment", settings=Settings(kafka_bootstrap="127.0.0.1:1"))
    events: list[dict[str, Any]] = []
    client.transport.submit = lambda p: events.append(  # type: ignore[method-assign,assignment]
        orjson.loads(client._serialise(p)[1]))
    previous = sdk.set_client(client)
    try:
        yield events
    finally:
        sdk.set_client(previous)
        client.close(0.1)


def _flaky(failures: int) -> Any:
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise ConnectionError(f"refused #{calls['n']}")
        return "ok"
    return call


def test_retry_reports_one_recovered_episode_not_one_event_per_attempt(sent: list[dict[str, Any]]) -> None:
    assert retry(attempts=4, backoff=0.001)(_flaky(2))() == "ok"
    [event] = sent
    r = event["recovery"]
    assert (r["attempted"], r["successful"], r["method"], r["attempts"]) == (True, True, "retry", 3)
    assert r["duration_ms"] >= 1  # two failed attempts and one backoff of 1 ms, then 2 ms
    assert event["exceptions"][-1]["value"] == "refused #1"  # the episode's first failure
    assert event["level"] == "warning"
    decode_event(orjson.dumps(event))  # what the worker accepts


def test_retry_that_gives_up_reports_a_failed_episode_and_reraises(sent: list[dict[str, Any]]) -> None:
    with pytest.raises(ConnectionError, match="refused #3"):
        retry(attempts=3, backoff=0.0)(_flaky(5))()
    [event] = sent
    assert event["recovery"]["successful"] is False and event["recovery"]["attempts"] == 3
    assert event["level"] == "error"


def test_success_on_the_first_attempt_sends_nothing(sent: list[dict[str, Any]]) -> None:
    assert retry(attempts=3)(_flaky(0))() == "ok"
    assert fallback(_flaky(0), lambda: "cached") == "ok"
    with Recovering("retry"):
        pass
    assert sent == []


def test_async_retry(sent: list[dict[str, Any]]) -> None:
    calls = {"n": 0}

    @retry(attempts=3, backoff=0.0)
    async def fetch() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TimeoutError("slow")
        return 42

    assert asyncio.run(fetch()) == 42
    [event] = sent
    assert event["recovery"]["successful"] is True and event["recovery"]["attempts"] == 2


def test_fallback_and_the_context_manager(sent: list[dict[str, Any]]) -> None:
    assert fallback(_flaky(1), lambda: "cached") == "cached"
    empty: dict[str, str] = {}
    with pytest.raises(KeyError):
        fallback(_flaky(1), lambda: empty["missing"])
    with Recovering("restart") as r:
        r.failed(OSError("worker died"))
    with pytest.raises(RuntimeError), Recovering("failover"):
        raise RuntimeError("both regions down")
    assert [(e["recovery"]["method"], e["recovery"]["successful"]) for e in sent] == [
        ("fallback", True), ("fallback", False), ("restart", True), ("failover", False)]


def test_events_carry_a_resource_snapshot_unless_turned_off() -> None:
    for enabled in (True, False):
        client = Client("payment", settings=Settings(kafka_bootstrap="127.0.0.1:1"), resources=enabled)
        events: list[dict[str, Any]] = []
        client.transport.submit = lambda p, c=client, out=events: out.append(  # type: ignore[method-assign,misc]
            orjson.loads(c._serialise(p)[1]))
        try:
            client.capture_message("hello")
        finally:
            client.close(0.1)
        [event] = events
        if not enabled:
            assert event.get("resources") is None
            continue
        res = event["resources"]
        assert res["rss_bytes"] > 1_000_000 and res["threads"] >= 1 and res["open_fds"] >= 3
        assert 0 <= res["cpu_percent"] and res["memory_available_bytes"] > 0
        assert ErrorEvent.model_validate(event).resources is not None  # within the contract


@pytest.mark.parametrize(("given", "sent"), [("retry", "retry"), ("Circuit Breaker", "circuit_breaker"),
                                             ("2nd-try", "m2nd-try"), ("x" * 100, "x" * 64), ("", "m")])
def test_the_sdk_sends_any_method_name_in_the_form_the_contract_takes(given: str, sent: str) -> None:
    assert method_name(given) == sent
    ErrorEvent.model_validate({"service": "s", "recovery": {"method": method_name(given)}})
