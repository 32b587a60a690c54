"""The real gateway (uvicorn + Starlette + aiokafka) on a free loopback port, in a thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from errstream.local.process import free_port
from errstream_core.settings import Settings
from producers.gateway.app import server_config


@contextmanager
def running_gateway(settings: Settings, wait_for_kafka: bool = True) -> Iterator[str]:
    """Yields the base URL, e.g. ``http://127.0.0.1:40123``, once it can accept events; stops it on exit."""
    port = free_port()
    server = uvicorn.Server(server_config(settings, "127.0.0.1", port))  # as `errstream gateway` runs it
    thread = threading.Thread(target=server.run, name="test-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("gateway did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    while wait_for_kafka and not httpx.get(f"{url}/healthz").json()["kafka"]:
        if time.monotonic() > deadline:
            raise RuntimeError("gateway did not connect to Kafka")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
