"""Grouping rules on events captured from real tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.events import ErrorEvent
from stream_processors.fingerprint import collapse_recursion, frame_key, group_event
from stream_processors.scrub import Scrubber
from tests.support.raising import capture, load_module

CHARGE = """
    def process(payload):
        return payload["user_id"]

    def handle(payload):
        return process(payload)
"""

CALL_SITES = """
    def validate(amount):
        raise ValueError("invalid amount")

    def refund(amount):
        if amount < 0:
            raise ValueError("invalid amount")

    def charge(amount):
        if amount < 0:
            raise ValueError("invalid amount")
"""

CHAINED = """
    class UpstreamTimeout(Exception):
        pass

    def connect(host):
        raise ConnectionRefusedError(f"connect to {host}:5432 refused")

    def inventory(host, wrapper_message):
        try:
            connect(host)
        except ConnectionRefusedError as exc:
            raise UpstreamTimeout(wrapper_message) from exc

    def inventory_reset(host):
        try:
            raise ConnectionResetError(f"connection to {host} reset by peer")
        except ConnectionResetError as exc:
            raise UpstreamTimeout("inventory service unavailable") from exc
"""

ONE_ROOT_TWO_FAILURES = """
    class StorageUnavailable(Exception):
        pass

    class CheckoutFailed(Exception):
        pass

    class RefundFailed(Exception):
        pass

    def query(sql):
        raise TimeoutError("database timed out after 30s")

    def load_order(order_id):
        try:
            query(f"select * from orders where id = {order_id}")
        except TimeoutError as exc:
            raise StorageUnavailable("orders store unavailable") from exc

    def checkout(order_id):
        try:
            load_order(order_id)
        except StorageUnavailable as exc:
            raise CheckoutFailed(f"checkout of order {order_id} failed") from exc

    def refund(order_id):
        try:
            load_order(order_id)
        except StorageUnavailable as exc:
            raise RefundFailed(f"refund of order {order_id} failed") from exc
"""

RECURSION = """
    def walk(node, depth):
        if depth == 0:
            raise RecursionError("tree too deep at " + node)
        return walk(node, depth - 1)

    def even(n):
        if n == 0:
            raise LookupError("bottom")
        return odd(n - 1)

    def odd(n):
        return even(n - 1)
"""


def test_same_bug_on_shifted_lines_and_another_deploy_path_is_one_group(tmp_path: Path) -> None:
    v1 = load_module(tmp_path / "releases" / "v1", "billing.charge", CHARGE)
    v2 = load_module(tmp_path / "releases" / "v2", "billing.charge", CHARGE, padding=17)
    e1 = capture(v1.handle, {})
    e2 = capture(v2.handle, {"account": 1})
    lines1 = [f.lineno for f in e1.exceptions[0].stacktrace]
    lines2 = [f.lineno for f in e2.exceptions[0].stacktrace]
    assert lines1 != lines2 and e1.exceptions[0].stacktrace[-1].abs_path != e2.exceptions[0].stacktrace[-1].abs_path
    g1, g2 = group_event(e1), group_event(e2)
    assert g1.fingerprint == g2.fingerprint
    assert len(g1.fingerprint) == 32 and int(g1.fingerprint, 16) >= 0
    assert g1.title == "KeyError: 'user_id'"
    assert g1.culprit == "billing.charge in process"
    assert g1.exception_type == "KeyError"


def test_same_message_from_two_call_sites_is_two_groups(tmp_path: Path) -> None:
    mod = load_module(tmp_path, "billing.amounts", CALL_SITES)
    refund, charge = group_event(capture(mod.refund, -1)), group_event(capture(mod.charge, -1))
    assert refund.title == charge.title == "ValueError: invalid amount"
    assert refund.fingerprint != charge.fingerprint
    assert (refund.culprit, charge.culprit) == ("billing.amounts in refund", "billing.amounts in charge")
    # and one call site raising again is the same group
    assert group_event(capture(mod.refund, -5)).fingerprint == refund.fingerprint


def test_chained_exceptions_group_on_the_root_cause(tmp_path: Path) -> None:
    mod = load_module(tmp_path, "checkout.inventory", CHAINED)
    a = capture(mod.inventory, "10.0.3.7", "inventory service unavailable", service="checkout")
    b = capture(mod.inventory, "10.0.9.1", "inventory timed out after 30s", service="checkout")
    assert [e.type for e in a.exceptions] == ["ConnectionRefusedError", "UpstreamTimeout"]
    ga, gb = group_event(a), group_event(b)
    assert ga.fingerprint == gb.fingerprint  # the wrapper's wording does not split the root cause
    assert ga.exception_type == "ConnectionRefusedError"
    assert ga.title == "ConnectionRefusedError: connect to 10.0.3.7:5432 refused"
    assert ga.culprit == "checkout.inventory in connect"
    # another root cause under the same wrapper is another bug
    reset = group_event(capture(mod.inventory_reset, "10.0.3.7", service="checkout"))
    assert reset.fingerprint != ga.fingerprint and reset.exception_type == "ConnectionResetError"


def test_one_root_cause_under_two_outer_failures_is_two_issues(tmp_path: Path) -> None:
    """Grouped by the whole chain, as engineers (and Sentry) see it: checkout and refund fail differently."""
    mod = load_module(tmp_path, "shop.orders", ONE_ROOT_TWO_FAILURES)
    checkout, refund = capture(mod.checkout, 7), capture(mod.refund, 7)
    assert [e.type for e in checkout.exceptions] == ["TimeoutError", "StorageUnavailable", "CheckoutFailed"]
    assert group_event(checkout).fingerprint != group_event(refund).fingerprint
    # the same failure again, for another order, is the same issue
    assert group_event(capture(mod.checkout, 8)).fingerprint == group_event(checkout).fingerprint
    # titles stay readable: the root cause, not a concatenation of the chain
    assert group_event(checkout).title == group_event(refund).title == "TimeoutError: database timed out after 30s"


def test_recursion_depth_does_not_split_a_group(tmp_path: Path) -> None:
    mod = load_module(tmp_path, "catalog.tree", RECURSION)
    shallow, deep = capture(mod.walk, "a", 3), capture(mod.walk, "b", 60)
    assert len(deep.exceptions[0].stacktrace) > len(shallow.exceptions[0].stacktrace) + 50
    assert group_event(shallow).fingerprint == group_event(deep).fingerprint
    # mutual recursion: even → odd → even … collapses by cycles
    assert group_event(capture(mod.even, 4)).fingerprint == group_event(capture(mod.even, 40)).fingerprint
    assert group_event(capture(mod.walk, "a", 3)).fingerprint != group_event(capture(mod.even, 4)).fingerprint


def test_collapse_recursion_keeps_distinct_frames_in_order() -> None:
    assert collapse_recursion(["m", "a", "a", "a", "b"]) == ["m", "a", "b"]
    assert collapse_recursion(["m", "a", "b", "a", "b", "a", "b", "c"]) == ["m", "a", "b", "c"]
    assert collapse_recursion(["a", "b", "c", "d"]) == ["a", "b", "c", "d"]


def test_explicit_fingerprint_overrides_and_default_placeholder_expands(tmp_path: Path) -> None:
    mod = load_module(tmp_path, "billing.amounts", CALL_SITES)
    refund = capture(mod.refund, -1, fingerprint=["payment-gateway-down"])
    charge = capture(mod.charge, -1, fingerprint=["payment-gateway-down"])
    assert group_event(refund).fingerprint == group_event(charge).fingerprint
    assert group_event(refund).title == "ValueError: invalid amount"  # title and culprit stay computed

    def fp(fn: object, parts: list[str]) -> str:
        return group_event(capture(fn, -1, fingerprint=parts)).fingerprint  # type: ignore[arg-type]

    default_eu = fp(mod.refund, ["{{ default }}", "eu"])
    assert default_eu == fp(mod.refund, ["{{default}}", "eu"])
    assert default_eu != fp(mod.refund, ["{{ default }}", "us"])  # split one group by region
    assert default_eu != fp(mod.charge, ["{{ default }}", "eu"])  # the default part still tells call sites apart
    plain = group_event(capture(mod.refund, -1)).fingerprint
    assert plain not in (default_eu, group_event(refund).fingerprint)


def test_no_in_app_frame_falls_back_to_all_frames() -> None:
    def library_failure(text: str) -> object:
        return json.loads(text)

    event = capture(library_failure, "{")
    for frame in event.exceptions[0].stacktrace:
        frame.in_app = False  # as if the whole stack were library code
    grouping = group_event(event)
    assert grouping.exception_type == "JSONDecodeError"
    assert grouping.culprit.startswith("json.decoder in ")  # the raising frame, inside the standard library
    moved = event.model_copy(deep=True)
    for frame in moved.exceptions[0].stacktrace:
        frame.lineno = (frame.lineno or 0) + 40
    assert group_event(moved).fingerprint == grouping.fingerprint
    renamed = event.model_copy(deep=True)
    renamed.exceptions[0].stacktrace[1].function = "loads_strict"
    assert group_event(renamed).fingerprint != grouping.fingerprint  # library frames are what groups now


def test_memory_addresses_and_absolute_paths_never_reach_the_fingerprint(tmp_path: Path) -> None:
    mod = load_module(tmp_path, "billing.charge", CHARGE)
    a, b = capture(mod.handle, {}), capture(mod.handle, {})
    for event, address, root in ((a, "0x7f3a2b1c0d10", "/srv/app/v1"), (b, "0x55d1e0a4f2c8", "/opt/other")):
        for frame in event.exceptions[0].stacktrace:
            frame.module = None
            frame.function = f"<lambda at {address}>" if frame.function == "process" else frame.function
            frame.abs_path = f"{root}/billing/charge.py"
            frame.filename = frame.abs_path
    assert group_event(a).fingerprint == group_event(b).fingerprint
    assert group_event(a).culprit == "charge in <lambda>"
    assert "0x" not in frame_key(a.exceptions[0].stacktrace[-1])


def _message_event(message: str, *, logger: str = "payments.worker", level: str = "error") -> ErrorEvent:
    return ErrorEvent(service="billing", message=message, logger=logger, level=level)  # type: ignore[arg-type]


def test_stackless_events_group_on_logger_and_parameterised_message_not_level() -> None:
    a = group_event(_message_event("connect to 10.0.3.7:5432 refused after 3/5 retries"))
    b = group_event(_message_event("connect to 10.1.0.2:5433 refused after 4/5 retries"))
    assert a.fingerprint == b.fingerprint
    assert a.title == "connect to 10.0.3.7:5432 refused after 3/5 retries" and a.culprit == "payments.worker"
    reset = group_event(_message_event("connect to 10.0.3.7:5432 reset after 3/5 retries"))
    assert reset.fingerprint != a.fingerprint
    assert group_event(_message_event("connect to 10.0.3.7:5432 refused after 3/5 retries",
                                      logger="payments.api")).fingerprint != a.fingerprint
    # one log statement, logged at warning on early retries and at error on the last, is one issue
    assert group_event(_message_event("connect to 10.0.3.7:5432 refused after 3/5 retries",
                                      level="warning")).fingerprint == a.fingerprint
    assert group_event(ErrorEvent(service="billing")).title == "<no message>"


def test_exception_without_frames_groups_on_type_and_parameterised_value() -> None:
    def event(value: str) -> ErrorEvent:
        return ErrorEvent.model_validate(
            {"service": "billing", "exceptions": [{"type": "TimeoutError", "value": value}]}
        )

    assert group_event(event("timed out after 3012 ms")).fingerprint == group_event(
        event("timed out after 2987 ms")).fingerprint
    assert group_event(event("timed out after 3012 ms")).fingerprint != group_event(
        event("refused after 3012 ms")).fingerprint


@pytest.mark.parametrize("message", [
    "login failed for bob@example.com with password=hunter2",
    "charge of card 4111 1111 1111 1111 declined",
    "upstream said 401 for Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijk",
    "stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc rejected from 10.2.3.4",
])
def test_scrubbing_a_secret_out_of_the_message_keeps_the_fingerprint(message: str) -> None:
    raw = _message_event(message)
    before = group_event(raw).fingerprint
    scrubbed = Scrubber().scrub(_message_event(message))
    assert scrubbed.message != message  # the secret really went
    assert group_event(scrubbed).fingerprint == before


def test_fingerprint_is_the_same_in_another_process_with_another_hash_seed(tmp_path: Path) -> None:
    mod = load_module(tmp_path, "billing.charge", CHARGE)
    event = capture(mod.handle, {})
    script = (
        "import sys; from schemas.events import ErrorEvent; from stream_processors.fingerprint import group_event;"
        "print(group_event(ErrorEvent.model_validate_json(sys.stdin.read())).fingerprint)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], input=event.model_dump_json(), capture_output=True, text=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"}, cwd=Path(__file__).resolve().parents[2], check=True,
    ).stdout.strip()
    assert out == group_event(event).fingerprint
