"""Prints, one per line, the event payloads the unmodified `sentry-sdk` builds for a few typical errors.

Run in its own process (``python -m tests.support.apps.sentry_payloads``): ``sentry_sdk.init``
installs global hooks that must not leak into the test process.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from tests.support.apps.sentry_options import logging_breadcrumbs_and_error_events, with_local_variables

log = logging.getLogger("shop.orders")
log.setLevel(logging.INFO)


class OrderRejected(Exception):
    pass


def checkout(order: dict[str, int]) -> None:
    if order["qty"] > order["stock"]:
        raise OrderRejected(f"order {order['id']} wants {order['qty']}, {order['stock']} in stock")


def pay(order: dict[str, int]) -> None:
    try:
        checkout(order)
    except OrderRejected as exc:
        raise RuntimeError("payment aborted") from exc


class PrintEvents(Transport):
    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == "event":
                sys.stdout.buffer.write(item.payload.get_bytes() + b"\n")


def main() -> None:
    sentry_sdk.init(dsn="http://k@127.0.0.1:1/1", transport=PrintEvents, release="shop@2.0.1", environment="test",
                    server_name="shop-1", **with_local_variables(), **logging_breadcrumbs_and_error_events())
    sentry_sdk.set_tag("region", "eu-west-1")
    sentry_sdk.set_tag("request_id", "r-9")
    sentry_sdk.set_user({"id": 42, "email": "ada@example.com"})
    sentry_sdk.set_context("order", {"id": 1, "items": [1, 2]})
    sentry_sdk.set_extra("argv", ["serve", "--port", "8000"])
    sentry_sdk.add_breadcrumb(category="http", message="GET /cart", level="info", data={"status": 200})
    log.info("cart loaded")  # a breadcrumb from the logging integration
    fingerprints: list[Any] = [None, ["{{ default }}", "eu"], ["checkout"]]
    for fingerprint in fingerprints:
        with sentry_sdk.new_scope() as scope:
            scope.fingerprint = fingerprint
            for fn in (checkout, pay):
                try:
                    fn({"id": 1, "qty": 3, "stock": 1})
                except (OrderRejected, RuntimeError):
                    sentry_sdk.capture_exception()
    sentry_sdk.capture_message("disk almost full", level="warning")
    log.error("user %s locked out", "ada")  # an event from the logging integration
    sentry_sdk.flush(5)


if __name__ == "__main__":
    main()
