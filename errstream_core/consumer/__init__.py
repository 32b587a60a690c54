"""One consumer runtime for every errstream consumer (the processing stage and every sink).

In the shape of getsentry/arroyo: a :class:`~errstream_core.consumer.runtime.ConsumerRuntime`
owns the Kafka consumer (polling, pausing for backpressure, rebalances, the commit policy and
graceful shutdown) and drives one :class:`~errstream_core.consumer.step.Step` — the chain of
small steps (decode → process → produce or insert) that says which offsets are done. Records
that fail are dead-lettered by :mod:`~errstream_core.consumer.dead_letters`; unreachable
servers are retried with :mod:`~errstream_core.consumer.outage`'s backoff and state-change logs.
"""

from errstream_core.consumer.dead_letters import DeadLetters
from errstream_core.consumer.outage import Backoff, InfrastructureError, Outage
from errstream_core.consumer.runtime import ConsumerRuntime, consumer_options
from errstream_core.consumer.step import Step, start_producer

__all__ = ["Backoff", "ConsumerRuntime", "DeadLetters", "InfrastructureError", "Outage", "Step", "start_producer",
           "consumer_options"]
