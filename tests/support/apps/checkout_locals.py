"""A real module that raises with local variables, for the SDK's source context and locals tests.

The password is built at run time, so it is in no source line: where it shows up, it came from the locals.
"""

from __future__ import annotations

from typing import Any


def secret() -> str:
    return "pw-" + str(6 * 7) + "-x"


def charge(cart: dict[str, Any], card: str, password: str) -> None:
    attempts = 3
    total = sum(item["price"] for item in cart["items"])
    raise PermissionError(f"card declined after {attempts} attempts for {total}")


def checkout(client: Any) -> str | None:
    """Raise inside ``charge`` and report it through ``client`` (the SDK); returns the event id."""
    cart = {"id": 7, "items": [{"sku": "book", "price": 12}, {"sku": "pen", "price": 2}]}
    try:
        charge(cart, "visa", secret())
    except PermissionError:
        return client.capture_exception()  # type: ignore[no-any-return]
    return None
