"""Garbage collection for long-running stream roles: fewer, shorter collections.

CPython collects its youngest generation every 700 new container objects and the whole heap every 100
young collections. A worker or a sink creates a few dozen containers per event (records, headers, rows),
so at a few thousand events/s each ran about 900 young and 7 full collections in a 30 s benchmark; the
full ones walked every object alive — modules, the Kafka clients, detection's state — and paused the
process up to 200 ms each, about a tenth of the worker's CPU (docs/performance.md, "Garbage collection").

``settle()`` runs once a role is up: what is alive then (start-up state, which lives as long as the process)
is moved out of the collector's sight with ``gc.freeze``, and the thresholds are raised so a young
collection comes every 20,000 containers and a full one rarely. Reference counting still frees almost
everything at once; only cyclic garbage waits longer.
"""

from __future__ import annotations

import gc

YOUNG = 20_000  # containers allocated between two young collections (CPython: 700)
MIDDLE = 20  # young collections per middle one (CPython: 10)
OLD = 50  # middle collections per full one (CPython: 10; a full one also waits for 25 % more old objects)


def settle() -> None:
    """Freeze what start-up left alive and collect less often (idempotent; call when the role is up)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
