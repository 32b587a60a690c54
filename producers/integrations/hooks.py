"""Uncaught exceptions: ``sys.excepthook``, ``threading.excepthook`` and the asyncio loop's handler.

Each hook reports and then calls the hook it replaced, so the traceback still
reaches stderr and other tools' hooks keep working. The report is flushed
briefly for the main thread's hook because the interpreter is about to exit.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from types import TracebackType
from typing import Any

from producers.sdk import Client, get_client


def install_excepthooks(client: Client | None = None, *, flush_timeout: float = 2.0) -> None:
    """``client=None``: report to whatever ``errstream.get_client()`` is at the time of the error."""
    previous_sys = sys.excepthook
    previous_thread = threading.excepthook

    def sys_hook(tp: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        target = client or get_client()
        if target is not None and not isinstance(value, KeyboardInterrupt):
            target.capture_exception(value, level="critical", handled=False, mechanism="excepthook")
            target.flush(flush_timeout)
        previous_sys(tp, value, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        target = client or get_client()
        if target is not None and args.exc_value is not None and not isinstance(args.exc_value, SystemExit):
            target.capture_exception(args.exc_value, handled=False, mechanism="threading",
                                     extra={"thread": getattr(args.thread, "name", None)})
        previous_thread(args)

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook


def install_asyncio_handler(client: Client, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Report exceptions the loop would only log (e.g. a task that failed and was never awaited)."""
    loop = loop or asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            client.capture_exception(exc, handled=False, mechanism="asyncio",
                                     extra={"asyncio_message": str(context.get("message", ""))})
        else:
            client.capture_message(str(context.get("message", "asyncio error")), level="error", logger="asyncio")
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
