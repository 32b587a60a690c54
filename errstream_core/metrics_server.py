"""Serve the process's prometheus counters when ``ERRSTREAM_METRICS_PORT`` is set.

Counters (accepted, sampled-out, rate-limited, rejected events; rows written)
are only useful if operators can scrape them; faust's own web server is off, so
each role starts prometheus-client's tiny HTTP server itself.
"""

from __future__ import annotations

from prometheus_client import start_http_server

from errstream_core.kafka_requests import count_kafka_requests
from errstream_core.settings import Settings


def serve_metrics(settings: Settings) -> int | None:
    if not settings.metrics_port:
        return None
    count_kafka_requests()  # scraped with the rest: the broker work this process asks for
    start_http_server(settings.metrics_port, addr=settings.metrics_host)
    return settings.metrics_port
