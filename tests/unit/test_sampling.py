"""Sampling and rate limits decide what is stored, never what is counted."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from errstream_core.settings import Settings
from producers.synthetic import synthetic_event
from schemas.events import ErrorEvent
from schemas.fast import encode
from stream_processors.event_processor import EventProcessor
from stream_processors.rate_limit import RATE_LIMITED_FINGERPRINT, RATE_LIMITED_GLOBAL, RateLimiter
from stream_processors.sampling import DEFAULT_LEVEL_RATES, SamplingPolicy, keep

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _ids(n: int, seed: int = 3) -> list[uuid.UUID]:
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(n)]


def test_default_rates_per_level() -> None:
    policy = SamplingPolicy()
    assert {lvl: policy.rate("any", lvl) for lvl in DEFAULT_LEVEL_RATES} == {
        "critical": 1.0, "error": 1.0, "warning": 0.5, "info": 0.1, "debug": 0.01,
    }


def test_service_overrides_and_partial_level_config() -> None:
    policy = SamplingPolicy({"info": 0.2}, {"billing": {"warning": 1.0}})
    assert policy.rate("auth", "info") == 0.2 and policy.rate("auth", "warning") == 0.5
    assert policy.rate("billing", "warning") == 1.0 and policy.rate("billing", "info") == 0.2
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        SamplingPolicy({"debug": 0.0})
    with pytest.raises(ValueError, match="service billing"):
        SamplingPolicy({}, {"billing": {"error": 1.5}})


@pytest.mark.parametrize("rate", [0.5, 0.1, 0.01])
def test_keep_is_deterministic_and_has_the_right_proportion(rate: float) -> None:
    ids = _ids(40_000)
    decisions = [keep(i, rate) for i in ids]
    assert decisions == [keep(i, rate) for i in ids]  # a replay decides the same way
    kept = sum(decisions) / len(ids)
    assert abs(kept - rate) < 4 * (rate * (1 - rate) / len(ids)) ** 0.5 + 1e-9
    # sequential ids (a producer that numbers its events) are sampled just as evenly
    sequential = sum(keep(uuid.UUID(int=i), rate) for i in range(40_000)) / 40_000
    assert abs(sequential - rate) < 4 * (rate * (1 - rate) / 40_000) ** 0.5 + 1e-9


def test_rate_limit_per_fingerprint_and_minute_of_event_time() -> None:
    limiter = RateLimiter(per_fingerprint=3, global_limit=0)
    decisions = [limiter.admit("a", T0 + timedelta(seconds=i)) for i in range(5)]
    assert decisions == [None, None, None, RATE_LIMITED_FINGERPRINT, RATE_LIMITED_FINGERPRINT]
    assert limiter.admit("b", T0) is None  # another group has its own budget
    assert limiter.admit("a", T0 + timedelta(minutes=1)) is None  # the next minute too
    assert limiter.admit("a", T0 + timedelta(seconds=59)) == RATE_LIMITED_FINGERPRINT  # late, same minute


def test_global_rate_limit() -> None:
    limiter = RateLimiter(per_fingerprint=0, global_limit=4)
    decisions = [limiter.admit(f"fp{i}", T0) for i in range(6)]
    assert decisions == [None] * 4 + [RATE_LIMITED_GLOBAL] * 2
    assert limiter.admit("fp9", T0 + timedelta(minutes=1)) is None


def test_old_windows_are_forgotten() -> None:
    limiter = RateLimiter(per_fingerprint=1, global_limit=0, max_windows=4)
    for minute in range(10):
        limiter.admit("a", T0 + timedelta(minutes=minute))
    assert len(limiter._windows) == 4


def _raw(event: ErrorEvent) -> bytes:
    return event.model_dump_json().encode()


def test_processor_forwards_every_valid_event_and_stores_a_sample() -> None:
    processor = EventProcessor(sampling=SamplingPolicy({"info": 0.1}), rate_limiter=RateLimiter(0, 0))
    events = [ErrorEvent(service="auth", level="info", message=f"cache miss for key {i}", timestamp=T0,
                         event_id=i_d) for i, i_d in enumerate(_ids(2_000))]
    outcomes = [processor.process(_raw(e)) for e in events]
    processed = [o.processed for o in outcomes if o.processed is not None]
    assert len(processed) == 2_000  # all forwarded, so all counted downstream
    stored = [p for p in processed if p.stored]
    assert 120 <= len(stored) <= 280 and all(p.sample_rate == 0.1 for p in processed)
    assert {p.drop_reason for p in processed if not p.stored} == {"sampled_out"}
    assert processor.counts == {"accepted": len(stored), "sampled_out": 2_000 - len(stored)}


def test_processor_rate_limits_a_burst_of_one_bug() -> None:
    processor = EventProcessor()  # defaults: errors always sampled in, 100 stored per fingerprint-minute
    rng = random.Random(5)
    burst = [synthetic_event(rng, "checkout", timestamp=T0 + timedelta(seconds=i / 10)) for i in range(400)]
    fingerprints = set()
    stored_by_fp: dict[str, int] = {}
    for event in burst:
        p = processor.process(_raw(event)).processed
        assert p is not None
        fingerprints.add(p.fingerprint)
        stored_by_fp[p.fingerprint] = stored_by_fp.get(p.fingerprint, 0) + p.stored
    assert len(fingerprints) == 2  # checkout has two bugs
    assert all(n == 100 for n in stored_by_fp.values())
    assert processor.counts["accepted"] == 200 and processor.counts["rate_limited"] == 200


def test_processor_output_is_scrubbed_and_counts_rejections() -> None:
    processor = EventProcessor()
    event = ErrorEvent(service="billing", message="refund to bob@example.com failed",
                       tags={"authorization": "Bearer abc"})
    out = processor.process(_raw(event)).processed
    assert out is not None
    forwarded = encode(out).decode()
    assert "bob@example.com" not in forwarded and "Bearer abc" not in forwarded
    assert orjson.loads(forwarded)["event"]["message"] == "refund to <email> failed"
    assert processor.process(b"{nope").dead_letter is not None
    assert processor.counts == {"accepted": 1, "rejected": 1}


def test_worker_configuration_from_errstream_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERRSTREAM_SAMPLE_RATES", '{"info": 0.25}')
    monkeypatch.setenv("ERRSTREAM_SERVICE_SAMPLE_RATES", '{"billing": {"debug": 1.0}}')
    monkeypatch.setenv("ERRSTREAM_RATE_LIMIT_PER_FINGERPRINT", "7")
    monkeypatch.setenv("ERRSTREAM_RATE_LIMIT_GLOBAL", "0")
    monkeypatch.setenv("ERRSTREAM_SCRUB_USER_IDS", "true")
    monkeypatch.setenv("ERRSTREAM_SCRUB_SENSITIVE_KEYS", '["iban"]')
    processor = EventProcessor.from_settings(Settings())
    assert processor.sampling.rate("auth", "info") == 0.25 and processor.sampling.rate("auth", "warning") == 0.5
    assert processor.sampling.rate("billing", "debug") == 1.0
    assert (processor.rate_limiter.per_fingerprint, processor.rate_limiter.global_limit) == (7, 0)
    assert processor.scrubber.config.hash_user_ids and processor.scrubber.config.is_sensitive_key("IBAN")
    monkeypatch.setenv("ERRSTREAM_SAMPLE_RATES", '{"info": 2}')
    with pytest.raises(ValueError, match="level info"):
        EventProcessor.from_settings(Settings())
