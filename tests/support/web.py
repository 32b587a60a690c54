"""The real web app (uvicorn + FastAPI, as `errstream web` runs it) on a free loopback port, in a thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from errstream.web.app import server_config
from errstream_core.settings import Settings
from tests.support.asgi import serving


@contextmanager
def running_web(settings: Settings, wait_for_feed: bool = True) -> Iterator[str]:
    """Yields the base URL once the app serves (and its alerts feed reads Kafka); stops it on exit."""
    with serving(lambda port: server_config(settings, "127.0.0.1", port), "web",
                 (lambda health: health["alerts_feed"]) if wait_for_feed else None, timeout=60) as url:
        yield url
