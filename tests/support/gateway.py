"""The real gateway (uvicorn + Starlette + aiokafka) on a free loopback port, in a thread of the test process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from errstream.local.process import free_port  # noqa: F401  (re-exported: tests import it from here)
from errstream_core.settings import Settings
from producers.gateway.app import server_config
from tests.support.asgi import serving


@contextmanager
def running_gateway(settings: Settings, wait_for_kafka: bool = True) -> Iterator[str]:
    """Yields the base URL, e.g. ``http://127.0.0.1:40123``, once it can accept events; stops it on exit."""
    with serving(lambda port: server_config(settings, "127.0.0.1", port), "gateway",  # as `errstream gateway` runs it
                 (lambda health: health["kafka"]) if wait_for_kafka else None) as url:
        yield url
