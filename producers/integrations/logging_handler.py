"""A ``logging.Handler``: ERROR records become events, INFO and above become breadcrumbs.

Records of the SDK's own loggers and of the Kafka client are ignored, so a
broker outage cannot turn into a stream of events about itself.
"""

from __future__ import annotations

import logging

from producers.sdk import Client, get_client

_IGNORED_PREFIXES = ("errstream.sdk", "aiokafka", "kafka")
_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
                logging.ERROR: "error", logging.CRITICAL: "critical"}


def level_name(levelno: int) -> str:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _LEVEL_NAMES[threshold]
    return "debug"


class ErrstreamHandler(logging.Handler):
    def __init__(self, client: Client | None = None, *, event_level: int = logging.ERROR,
                 breadcrumb_level: int = logging.INFO) -> None:
        super().__init__(level=min(event_level, breadcrumb_level))
        self._client = client
        self.event_level = event_level
        self.breadcrumb_level = breadcrumb_level
        self.errors = 0  # records that could not be reported (e.g. a bad format string)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name.startswith(_IGNORED_PREFIXES):
                return
            client = self._client or get_client()
            if client is None:
                return
            message = record.getMessage()
            level = level_name(record.levelno)
            if record.levelno >= self.event_level:
                exc = record.exc_info[1] if record.exc_info else None
                if exc is not None:
                    client.capture_exception(exc, level=level, mechanism="logging", message=message,
                                             logger=record.name)
                else:
                    client.capture_message(message, level=level, logger=record.name)
            if record.levelno >= self.breadcrumb_level:
                client.add_breadcrumb(message, category=record.name, level=level, type="log")
        except Exception:  # a logging handler must never raise into the app
            self.errors += 1
