"""Count every request a process's Kafka clients send, by API: the broker work the pipeline asks for.

The broker's CPU per event follows the requests and records the pipeline sends it (produce,
fetch, offset commits, heartbeats), not only the events; a change that adds a commit per batch
or a topic crossing shows here first. aiokafka has no request counters of its own, and every
request of every client in the process — the worker's stage, faust's consumer, producers and
changelogs, the sinks — goes through ``AIOKafkaClient.send``, so one wrapper there counts them
all. It costs one counter increment per request (requests carry whole batches).

Exposed with the role's other counters when ``ERRSTREAM_METRICS_PORT`` is set:
``errstream_kafka_requests_total{api="Produce"|"Fetch"|"OffsetCommit"|…}`` and
``errstream_kafka_produced_bytes_total`` (record-batch bytes in produce requests).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from aiokafka.client import AIOKafkaClient
from prometheus_client import Counter

REQUESTS = Counter("errstream_kafka_requests", "Requests sent to Kafka brokers by this process", ["api"])
PRODUCED_BYTES = Counter("errstream_kafka_produced_bytes", "Record-batch bytes sent in produce requests")
_VERSION = re.compile(r"(Request)?(_v\d+)?$")
_installed = False


def api_name(request: Any) -> str:
    """``ProduceRequest_v7`` → ``Produce``."""
    return _VERSION.sub("", type(request).__name__) or "unknown"


def _produced_bytes(request: Any) -> int:
    """Bytes of the record batches in a produce request: ``[(topic, [(partition, batch), …]), …]``."""
    total = 0
    for topic in getattr(request, "_topics", None) or getattr(request, "topics", None) or ():
        for partition in topic[1] if isinstance(topic, tuple | list) and len(topic) > 1 else ():
            batch = partition[1] if isinstance(partition, tuple | list) and len(partition) > 1 else None
            if isinstance(batch, bytes | bytearray | memoryview):
                total += len(batch)
    return total


def count_kafka_requests() -> None:
    """Wrap ``AIOKafkaClient.send`` once per process (idempotent)."""
    global _installed
    if _installed:
        return
    original = AIOKafkaClient.send

    @functools.wraps(original)
    async def send(self: AIOKafkaClient, node_id: Any, request: Any, **kwargs: Any) -> Any:
        name = api_name(request)
        REQUESTS.labels(name).inc()
        if name == "Produce":
            PRODUCED_BYTES.inc(_produced_bytes(request))
        return await original(self, node_id, request, **kwargs)

    AIOKafkaClient.send = send  # type: ignore[method-assign]
    _installed = True
