"""A bound on how long a stopping role may take, whatever it waits for.

A role asked to stop (SIGTERM, SIGINT) gives its consumers ``shutdown_seconds`` to finish, commit and leave.
Some waits cannot be cancelled from the event loop: a ClickHouse request in a thread, or faust's own
shutdown while the broker is gone (its consumer and producer retry their requests; a worker whose broker
was down was still alive 30 s after SIGTERM). ``exit_after`` starts a daemon timer that ends the process
when the bound is passed: whatever was not committed by then is replayed by the next owner, idempotently.
"""

from __future__ import annotations

import logging
import os
import threading


def exit_after(seconds: float, role: str) -> threading.Timer:
    """End the process ``seconds`` from now unless it ended first (exit status 0: a stop that was asked for)."""

    def watchdog() -> None:
        logging.getLogger("errstream").warning("%s: shutdown took longer than %.0f s; exiting, uncommitted work "
                                               "is replayed by the next owner", role, seconds)
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, watchdog)
    timer.daemon = True
    timer.start()
    return timer
