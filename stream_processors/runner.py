"""Start a faust worker for the errstream app from our own command line."""

from __future__ import annotations

import asyncio

import faust

from errstream_core.metrics_server import serve_metrics
from errstream_core.settings import Settings
from errstream_core.topics import cluster_replication, ensure_topics
from stream_processors.app import create_app


def run_worker(settings: Settings, loglevel: str = "warn") -> None:
    asyncio.run(ensure_topics(settings))
    replication_factor, _ = asyncio.run(cluster_replication(settings))
    serve_metrics(settings)
    app = create_app(settings, replication_factor)
    # faust.Worker owns the event loop and handles SIGTERM/SIGINT with a clean shutdown.
    asyncio.set_event_loop(asyncio.new_event_loop())
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # faust's progress spinner puts the root logger at DEBUG for good, so every aiokafka debug call
    # builds a LogRecord: about 5 per event, a tenth of the worker's CPU in a profile at load
    worker.spinner = None
    worker.execute_from_commandline()
