"""A small app instrumented with the unmodified `sentry-sdk`: what a team with Sentry already has.

Run as ``python -c "from tests.support.apps import sentry_shop; sentry_shop.main(DSN)"``.
"""

from __future__ import annotations

import logging

import sentry_sdk

from tests.support.apps.sentry_options import logging_breadcrumbs_and_error_events

log = logging.getLogger("shop.payments")


class PaymentDeclined(Exception):
    pass


def charge(order: dict[str, int]) -> None:
    if order["amount"] <= 0:
        raise PaymentDeclined(f"card declined for amount {order['amount']}")


def lookup(customers: dict[str, str], customer_id: str) -> str:
    return customers[customer_id]


def parse_quantity(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise RuntimeError("could not parse the basket") from exc


def main(dsn: str) -> None:
    sentry_sdk.init(dsn=dsn, release="shop@2.0.1", environment="staging", server_name="shop-1",
                    traces_sample_rate=0.0, **logging_breadcrumbs_and_error_events())
    sentry_sdk.set_tag("region", "eu-west-1")
    sentry_sdk.set_user({"id": "u-42", "email": "ada@example.com"})
    sentry_sdk.add_breadcrumb(category="checkout", message="checkout started", level="info")
    log.warning("payment provider slow")  # a breadcrumb through sentry's logging integration

    try:
        charge({"amount": -5})
    except PaymentDeclined:
        sentry_sdk.capture_exception()

    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["customer-lookup-failures"]
        scope.set_tag("customer_tier", "gold")
        try:
            lookup({}, "cus_1")
        except KeyError:
            sentry_sdk.capture_exception()

    try:
        parse_quantity("three")
    except RuntimeError:
        sentry_sdk.capture_exception()

    sentry_sdk.capture_message("inventory low", level="warning")
    sentry_sdk.flush(10)
