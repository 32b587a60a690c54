"""Size and range limits shared by every model: what the worker accepts, the sink can store.

They protect the worker and ClickHouse from one runaway client: an event that
breaks them is rejected with a precise validation error (HTTP 4xx at the
gateway, a dead-letter record in the worker) instead of being truncated
silently. The numeric bounds come from the ClickHouse columns and from the
JSON libraries on the way there (msgspec in the worker, orjson in the sink,
clickhouse-connect's client-side serialisation): a value that passes the
worker must never fail later in the sink.
"""

from datetime import UTC, datetime

MAX_SHORT = 200  # names: service, environment, release, types, tag keys and values
MAX_MESSAGE = 8_192  # exception values and log messages
MAX_PATH = 1_024  # file names, URLs
MAX_CONTEXT_LINE = 1_024
MAX_CONTEXT_LINES = 10  # source lines before and after a frame's line (Sentry's SDKs send 5)
MAX_FRAME_VARS = 50  # local variables of one frame (free-form values; scrubbed like context)
MAX_FRAMES = 250  # per exception; Python's default recursion limit is 1000
MAX_CHAIN = 10  # exceptions in one chain (cause / context)
MAX_BREADCRUMBS = 100
MAX_TAGS = 50
MAX_FINGERPRINT_PARTS = 10
MAX_EVENT_BYTES = 1_000_000  # serialized event, checked before parsing
# The worker's output for one event (scrubbing can lengthen values): Kafka's default limit for a record batch
# is 1,048,588 bytes, and the worker ships each record in a batch with at most ~16 KB of others.
MAX_PROCESSED_BYTES = MAX_EVENT_BYTES + 16_000

# Free-form values (``context``, breadcrumb ``data``): any JSON, within these bounds.
MAX_DEPTH = 20  # levels of nesting below the field; pydantic's JSON parser stops at 200 for the whole document
MAX_FREE_FORM_VALUES = 10_000  # values (scalars and containers) in one free-form field
MIN_INT = -(2**63)  # integers: what orjson (the sink) and ClickHouse's JSON functions hold
MAX_INT = 2**64 - 1
MAX_UINT32 = 2**32 - 1  # line and column numbers; recovery durations in ms (49 days)
MAX_RESOURCE_COUNT = 2**63 - 1  # bytes and counts in a resource snapshot (Int64 in ClickHouse)
MAX_PERCENT = 100_000.0  # CPU % of a process: 100 per busy core
MAX_RECOVERY_ATTEMPTS = 1_000_000  # attempts in one recovery episode
RECOVERY_METHOD_PATTERN = r"^[a-z][a-z0-9_.\-]{0,63}$"  # retry, fallback, circuit_breaker, restart, ...

# Timestamps the tables hold: error_counts_1m.minute is DateTime('UTC') (seconds since 1970 in a UInt32),
# the narrowest of the timestamp columns (error_events.timestamp is DateTime64(3), 1900..2299).
MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(2106, 2, 7, 6, 28, tzinfo=UTC)
