"""The faust worker: ``errors`` → validate/group → processed topic or ``errors.dlq``.

Delivery is at-least-once: a batch's output is acknowledged by Kafka before the
batch's input offsets can be committed (we await every send of the batch), so a
crash re-processes rather than loses. Duplicates this creates are removed by
the sink, which deduplicates on event id within a window of offsets.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import faust

from errstream.settings import Settings
from stream_processors.detection_app import install_detection
from schemas.fast import encode
from stream_processors.pipeline import EventProcessor

log = logging.getLogger("errstream.worker")

BATCH_MAX = 1_000
BATCH_WITHIN = 0.05  # seconds: bounds the latency a batch adds


def _broker_credentials(settings: Settings) -> faust.auth.Credentials | None:
    kw = settings.kafka_client_kwargs()
    ssl_context = kw.get("ssl_context")
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        if settings.kafka_sasl_mechanism == "PLAIN":
            return faust.SASLCredentials(
                username=settings.kafka_sasl_username or "", password=password, ssl_context=ssl_context
            )
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username or "", password=password, ssl_context=ssl_context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if ssl_context is not None:
        return faust.SSLCredentials(ssl_context)
    return None


def create_app(settings: Settings) -> faust.App:
    faust_dir = (settings.home / "faust").resolve()
    faust_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        settings.app_id,
        # faust's default data dir is "<app id>-data" in the current directory; keep it with our state.
        datadir=str(faust_dir / settings.app_id),
        broker=settings.faust_broker_url(),
        broker_credentials=_broker_credentials(settings),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_compression_type="lz4",
        producer_linger_ms=5,
        broker_session_timeout=settings.worker_session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_seconds / 5),
    )
    errors_topic = app.topic(settings.topic_errors, value_serializer="raw", key_serializer="raw")
    processed_topic = app.topic(settings.topic_processed, value_serializer="raw", key_serializer="raw")
    dlq_topic = app.topic(settings.topic_dlq, value_serializer="raw", key_serializer="raw")
    processor = EventProcessor.from_settings(settings)
    app.conf.errstream_processor = processor  # type: ignore[attr-defined]

    @app.agent(errors_topic, name="process-errors")
    async def process_errors(stream: faust.Stream) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            now = datetime.now(UTC)
            pending = []
            for event in events:
                msg = event.message
                outcome = processor.process(event.value, partition=msg.partition, offset=msg.offset, received_at=now)
                if outcome.processed is not None:
                    p = outcome.processed
                    pending.append(
                        await processed_topic.send(
                            key=p.fingerprint.encode(),
                            value=encode(p),
                            headers=[("event_id", p.event.event_id.hex.encode())],
                        )
                    )
                elif outcome.dead_letter is not None:
                    dl = outcome.dead_letter
                    log.warning("dead letter: %s (%s) at %s/%s", dl.reason, dl.detail[:200],
                                msg.partition, msg.offset)
                    pending.append(await dlq_topic.send(key=msg.key, value=dl.model_dump_json().encode()))
            if pending:
                await asyncio.gather(*pending)

    if settings.detection_enabled:
        install_detection(app, settings)
    return app
