"""errstream: error tracking on Kafka, faust and ClickHouse.

The public SDK facade (``errstream.init``, ``errstream.capture_exception``) is
re-exported lazily so that importing the command line or a worker does not pull
in the producer's background thread machinery.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy facade: the SDK lives in `producers`; import it only when a user asks for it.
    if name == "init":
        from producers.setup import init

        return init
    if name in {"capture_exception", "capture_message", "flush", "get_client",
                "add_breadcrumb", "set_tag", "set_user", "set_context", "set_trace", "set_correlation_id"}:
        import producers.sdk as sdk

        return getattr(sdk, name)
    if name in {"recovering", "retry", "fallback"}:
        import producers.recovery as recovery

        return getattr(recovery, name)
    raise AttributeError(name)
