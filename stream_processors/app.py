"""The worker process: the processing stage (``errors`` → processed, DLQ, detection) and faust's detection.

The first stage is a plain aiokafka consumer (``process_stage``) started as a
faust task; detection is faust agents and tables (``detection``). Delivery
is at-least-once throughout: outputs are acknowledged by Kafka before input
offsets are committed, so a crash re-processes rather than loses. Duplicates
this creates are removed by the sink, which deduplicates on event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
from aiokafka.errors import KafkaConnectionError, KafkaError, NodeNotReadyError
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service

from errstream_core.settings import Settings
from errstream_core.shutdown import exit_after
from stream_processors.detection_agents import install_detection
from stream_processors.process_stage import INTERNAL_COMPRESSION, ProcessingStage

log = logging.getLogger("errstream.worker")


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


class _IdempotentProducer(faust_aiokafka.Producer):
    """faust's producer with acks=all and idempotence always, not only inside transactions.

    faust sends with acks=all (``producer_acks`` -1) but turns idempotence on only for exactly-once
    processing; without it, a retry after a leader change (a broker lost mid-request) can write an alert
    or a changelog entry twice.
    """

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


# How long a worker keeps trying to declare one of faust's topics (changelogs, repartitions) while a broker
# of the cluster is down: KRaft fences a dead broker within its session timeout (9 s by default), after
# which metadata stops naming it; beyond a minute something else is wrong, and the worker exits saying so.
TOPIC_DECLARE_SECONDS = 60.0


class _IdempotentTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with idempotent producers and topic creation that outlives a dead broker."""

    Producer = _IdempotentProducer

    async def _create_topic(self, owner: Service, client: aiokafka.AIOKafkaClient, topic: str,
                            partitions: int, replication: int, **kwargs: Any) -> None:
        """faust's declaration, tried again on retriable errors (a dead broker, a moved controller).

        A worker declares its tables' changelog topics while it starts; without this, one broker of a
        cluster being down made that fail with ``NodeNotReadyError`` and the worker exit at start-up.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TOPIC_DECLARE_SECONDS
        told = False
        while True:
            try:
                await super()._create_topic(owner, client, topic, partitions, replication, **kwargs)
                return
            except (KafkaError, RuntimeError) as exc:
                # faust raises RuntimeError("Invalid controller: …") when the controller moved between asking
                # and sending; every other RuntimeError is not ours to retry.
                retriable = exc.retriable if isinstance(exc, KafkaError) else "Invalid controller" in str(exc)
                if not retriable or owner.should_stop or loop.time() + 0.5 > deadline:
                    raise
                if not told:
                    log.warning("declaring topic %s: %s; retrying for up to %.0f s", topic, exc,
                                TOPIC_DECLARE_SECONDS)
                    told = True
                await asyncio.sleep(0.5)

    async def _get_controller_node(self, owner: Service, client: aiokafka.AIOKafkaClient,
                                   timeout: int = 30000) -> int | None:
        """The controller from fresh metadata, if it can be reached.

        faust sends its metadata request to the first broker the client knows of, which may be the dead
        one; aiokafka's own metadata update tries every known broker until one answers.
        """
        if owner.should_stop:
            return None
        try:
            async with asyncio.timeout(timeout / 1000):
                updated = await client.force_metadata_update()
        except TimeoutError:
            updated = False
        if not updated:
            raise KafkaConnectionError("no broker answered a metadata request")
        controller = client.cluster.controller
        if controller is None or not await client.ready(controller.nodeId):
            node = "unknown" if controller is None else controller.nodeId
            raise NodeNotReadyError(f"the controller (node {node}) cannot be reached")
        return int(controller.nodeId)


class _App(faust.App):
    """faust.App whose transports build ``_IdempotentProducer``s (the consumer side is faust's own)."""

    def _new_transport(self) -> Any:
        return _IdempotentTransport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        return _IdempotentTransport(self.conf.broker_producer, self)


def create_app(settings: Settings, replication_factor: int = 1) -> faust.App:
    """``replication_factor``: of faust's changelog and repartition topics (errstream_core.topics.replication)."""
    faust_dir = (settings.home / "faust").resolve()
    faust_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = _App(
        settings.app_id,
        # faust's default data dir is "<app id>-data" in the current directory; keep it with our state.
        datadir=str(faust_dir / settings.app_id),
        broker=settings.faust_broker_url(),
        broker_credentials=_broker_credentials(settings),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=replication_factor,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_compression_type=INTERNAL_COMPRESSION,
        producer_linger_ms=5,
        broker_session_timeout=settings.worker_session_timeout_seconds,
        # members learn of a rebalance at their next heartbeat: every second, so a hand-over starts at once
        broker_heartbeat_interval=min(1.0, settings.worker_session_timeout_seconds / 3),
        # faust's default is 2.8 s: every hand-over waits up to that long for the last commit, and a
        # crash replays that much more input (replays are idempotent, but cost a new owner time)
        broker_commit_interval=1.0,
    )
    stage = ProcessingStage(settings)
    stop, finished = asyncio.Event(), asyncio.Event()

    @app.task
    async def process_errors() -> None:
        """The first stage runs as long as the worker: its failure stops the worker (to be restarted)."""
        try:
            await stage.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("processing stage failed; stopping the worker")
            await app.crash(RuntimeError("processing stage failed"))  # type: ignore[attr-defined]
            raise
        finally:
            finished.set()

    @app.on_before_shutdown.connect  # type: ignore[misc,arg-type]
    async def stop_processing(app: faust.App, **kwargs: object) -> None:
        """SIGTERM: let the stage ship and commit its batch before faust cancels its tasks.

        faust's own shutdown may then wait on a broker that is gone: the process ends within the same
        bound as the other roles' (``errstream_core.shutdown``).
        """
        exit_after(settings.shutdown_seconds + 2, "worker")
        stop.set()
        try:
            await asyncio.wait_for(finished.wait(), settings.shutdown_seconds + 1)
        except TimeoutError:
            log.warning("processing stage did not stop in time; its last batch will be re-processed")

    if settings.detection_enabled:
        detection = install_detection(app, settings)
        stage.processor.settled = detection.settled  # a grouping upgrade's second grouping, only while needed
    return app
