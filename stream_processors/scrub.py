"""The worker's scrubbing: the shared core (``errstream_core.scrub``), applied to every event it reads.

Producers scrub before publishing too (the SDK by default, the gateway always), but
``errors`` also takes events from producers in other languages and from kcat, so the
worker scrubs again; the core is idempotent, so a scrubbed event passes unchanged.
"""

from __future__ import annotations

from errstream_core.scrub import DEFAULT_SENSITIVE_KEYS, FILTERED, Scrubber, ScrubConfig, scrub_text

__all__ = ["DEFAULT_SENSITIVE_KEYS", "FILTERED", "ScrubConfig", "Scrubber", "scrub_text"]
