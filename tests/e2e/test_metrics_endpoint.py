"""Operators scrape what the worker decided about each event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from errstream.local.process import free_port
from errstream_core.settings import Settings
from producers.publisher import ErrorPublisher
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e


def _accepted_and_rejected(url: str) -> tuple[float, float]:
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return (-1.0, -1.0)
    values = {"accepted": 0.0, "rejected": 0.0}
    for line in text.splitlines():
        for outcome in values:
            if line.startswith(f'errstream_worker_events_total{{outcome="{outcome}"}}'):
                values[outcome] = float(line.split()[-1])
    return values["accepted"], values["rejected"]


def test_worker_serves_its_counters_on_the_metrics_port(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    worker = Service("worker", settings, tmp_path, {"ERRSTREAM_METRICS_PORT": str(port)}).start()
    try:
        async def publish() -> None:
            async with ErrorPublisher(settings) as pub:
                await pub.publish_many_raw([b'{"service": "api", "message": "boom"}'] * 3 + [b"{oops"] * 2)

        asyncio.run(publish())
        got = wait_for(lambda: _accepted_and_rejected(f"http://127.0.0.1:{port}/metrics"),
                       lambda v: v == (3.0, 2.0), 60, "3 accepted and 2 rejected on /metrics",
                       diagnostics=lambda: worker.output()[-2000:])
        assert got == (3.0, 2.0)
    finally:
        worker.stop()
