"""``errstream.init``: the process's default client plus the integrations a Sentry user expects.

It lives apart from ``producers.sdk`` because the integrations (``producers.integrations``) build on the
SDK's client: the SDK does not import them, they import it.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from producers.integrations.hooks import install_excepthooks
from producers.integrations.logging_handler import ErrstreamHandler
from producers.sdk import Client, set_client

log = logging.getLogger("errstream.sdk")
_hooks_installed = False


def init(service: str, **options: Any) -> Client | None:
    """Create the default client (replacing an earlier one) and flush it at interpreter exit.

    Besides ``Client``'s options: ``install_hooks=True`` reports uncaught exceptions
    of the main thread and other threads (``producers.integrations.hooks``);
    ``capture_logging=True`` adds an ``ErrstreamHandler`` to the root logger (ERROR
    records become events, INFO and above breadcrumbs), as Sentry's SDK does.
    """
    global _hooks_installed
    install_hooks = options.pop("install_hooks", True)
    capture_logging = options.pop("capture_logging", True)
    try:
        client = Client(service, **options)
        previous = set_client(client)
        if previous is not None:
            previous.close()
        atexit.register(client.close)
        if install_hooks and not _hooks_installed:
            install_excepthooks()  # follows get_client(): installed once, whatever init() comes later
            _hooks_installed = True
        if capture_logging:
            root = logging.getLogger()
            if not any(isinstance(h, ErrstreamHandler) for h in root.handlers):
                root.addHandler(ErrstreamHandler())  # follows get_client(), so a later init() needs no new one
        return client
    except Exception:
        log.warning("errstream.init failed; errors will not be reported", exc_info=True)
        return None
