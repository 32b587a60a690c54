"""Counters operators scrape: nothing the worker decides about an event goes uncounted."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter(
    "errstream_worker_events",
    "Events seen by the worker, by outcome",
    ["outcome"],  # accepted, rejected, sampled_out, rate_limited
)
REJECTED = Counter(
    "errstream_worker_rejected", "Events sent to the dead-letter topic, by the stage that refused them and reason",
    ["stage", "reason"],
)
ADJUSTED = Counter(
    "errstream_worker_adjusted",
    "Valid events stored with a documented adjustment (docs/ingestion.md), by reason",
    ["reason"],  # timestamp_too_old, timestamp_in_future
)
RATE_LIMITED = Counter(
    "errstream_worker_rate_limited", "Valid events counted but not stored because of a rate limit", ["scope"]
)  # scope: fingerprint, global
LAX_EVENTS = Counter(
    "errstream_worker_lax_events",
    "Valid events the fast decoder refused and pydantic accepted (e.g. numbers sent as strings): "
    "each costs a second validation",
)
TRANSITION_GROUPINGS = Counter(
    "errstream_worker_transition_groupings",
    "Events of a grouping upgrade's transition, by whether the previous version's fingerprint was computed "
    "(a fingerprint detection has not decided yet) or skipped (settled): when computed stays near zero, "
    "the transition has done its work and can be ended",
    ["outcome"],  # computed, settled
)
