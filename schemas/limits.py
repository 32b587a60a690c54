"""Size limits shared by every model.

They protect the worker and ClickHouse from one runaway client: an event that
breaks them is rejected with a precise validation error (HTTP 4xx at the
gateway, a dead-letter record in the worker) instead of being truncated
silently.
"""

MAX_SHORT = 200  # names: service, environment, release, types, tag keys and values
MAX_MESSAGE = 8_192  # exception values and log messages
MAX_PATH = 1_024  # file names, URLs
MAX_CONTEXT_LINE = 1_024
MAX_FRAMES = 250  # per exception; Python's default recursion limit is 1000
MAX_CHAIN = 10  # exceptions in one chain (cause / context)
MAX_BREADCRUMBS = 100
MAX_TAGS = 50
MAX_FINGERPRINT_PARTS = 10
MAX_EVENT_BYTES = 1_000_000  # serialized event, checked before parsing
