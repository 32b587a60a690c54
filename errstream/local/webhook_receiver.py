"""A real HTTP webhook receiver for tests and benchmarks: uvicorn + Starlette on a free loopback port, in a thread.

It answers from a script of responses (then 200) and records every request,
so tests see exactly what a receiver would: status codes, headers, bodies and
arrival times.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Self
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from errstream.local.process import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict
    status: int
    at: float  # monotonic, for gaps between requests
    wall: float  # epoch seconds, for latencies measured against a publisher's clock


class WebhookReceiver:
    def __init__(self, script: list[int | tuple[int, dict[str, str]]] | None = None, delay: float = 0.0) -> None:
        self.script = list(script or [])
        self.delay = delay  # seconds per request: a slow receiver
        self.requests: list[Received] = []
        self.port = free_port()
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:  # a form post (SMS providers' APIs): the fields, each once
            body = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            step = self.script.pop(0) if self.script else 200
            status, headers = (step, {}) if isinstance(step, int) else step
            self.requests.append(Received(request.url.path, dict(request.headers), body, status, time.monotonic(),
                                          time.time()))
        return Response(b"ok" if status < 300 else b"receiver says no", status_code=status, headers=headers)

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def ok(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("webhook receiver did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
