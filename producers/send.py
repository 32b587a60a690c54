"""`errstream send`: publish JSON events from a file or stdin, or synthetic ones."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import orjson

from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from producers.publisher import ErrorPublisher
from producers.synthetic import synthetic_event


def read_payloads(data: bytes) -> list[bytes]:
    """A JSON object, a JSON list of objects, or JSON lines → one payload per event.

    Payloads are passed on as they are: the worker validates, and a bad one ends
    in ``errors.dlq`` with its reason rather than being refused here.
    """
    text = data.strip()
    if not text:
        return []
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return [line for line in text.splitlines() if line.strip()]
    if isinstance(doc, list):
        return [orjson.dumps(item) for item in doc]
    return [orjson.dumps(doc)]


async def send_events(settings: Settings, file: Path | None, synthetic: int, service: str | None,
                      timeout: float = 10.0) -> int:
    """Publish; ``timeout`` bounds the wait for the broker (and for the topic's leaders on a fresh one)."""
    await ensure_topics(settings, [settings.topic_errors], timeout=timeout)
    async with ErrorPublisher(settings, ack_timeout=timeout) as pub:
        if synthetic or file is None:
            rng = random.Random()
            return await pub.publish_many(synthetic_event(rng, service) for _ in range(synthetic or 1))
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        return await pub.publish_many_raw(read_payloads(data))
