"""A uvicorn server (as the `errstream` commands configure it) on a free loopback port, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from errstream.local.process import free_port


@contextmanager
def serving(config_for_port: Callable[[int], Any], name: str, ready: Callable[[dict[str, Any]], bool] | None = None,
            timeout: float = 30) -> Iterator[str]:
    """Yields the base URL once the server started and ``ready(GET /healthz)`` holds; stops it on exit."""
    port = free_port()
    server = uvicorn.Server(config_for_port(port))
    thread = threading.Thread(target=server.run, name=f"test-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    while ready is not None and not ready(httpx.get(f"{url}/healthz").json()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not become ready (see /healthz)")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
