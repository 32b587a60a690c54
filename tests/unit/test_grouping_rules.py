"""Server-side grouping rules: a rules file steers grouping without redeploying any app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.fast import event_from_model
from stream_processors.fingerprint import group_event
from stream_processors.grouping_rules import RulesError, parse_rules
from stream_processors.grouping_rules_follower import RulesBook
from tests.support.raising import capture, load_module

REPO = Path(__file__).resolve().parents[2]

RULES = """
# database outages are one issue, whatever raised them
error.type:ConnectionError -> database-unavailable
service:billing message:"*timeout*" -> billing-timeouts, {{ default }}
stack.module:vendor.* -app
stack.function:retry_* -group
"""

SHOP = """
    def retry_twice(fn, *args):
        return fn(*args)

    def charge(amount):
        raise ValueError(f"invalid amount {amount}")

    def pay(amount):
        return retry_twice(charge, amount)

    def connect():
        raise ConnectionError("db down")

    def checkout():
        connect()

    def refund():
        connect()
"""


def fast(event):  # the worker groups the msgspec mirror of an event
    return event_from_model(event)


def test_a_fingerprint_rule_merges_what_default_grouping_splits(tmp_path: Path) -> None:
    mod = load_module(tmp_path, "shop.pay", SHOP)
    rules = parse_rules(RULES)
    checkout, refund = fast(capture(mod.checkout)), fast(capture(mod.refund))
    assert group_event(checkout).fingerprint != group_event(refund).fingerprint
    assert group_event(checkout, rules).fingerprint == group_event(refund, rules).fingerprint
    assert group_event(checkout, rules).rules_version == rules.version


def test_default_in_a_rule_keeps_the_default_split(tmp_path: Path) -> None:
    rules = parse_rules(RULES)
    a = fast(capture(load_module(tmp_path, "a", "def f():\n    raise TimeoutError('timeout after 3s')\n").f,
                     service="billing"))
    b = fast(capture(load_module(tmp_path, "b", "def g():\n    raise TimeoutError('timeout after 9s')\n").g,
                     service="billing"))
    ga, gb = group_event(a, rules), group_event(b, rules)
    assert ga.fingerprint != gb.fingerprint  # billing-timeouts, {{ default }}: split by the default grouping
    assert ga.fingerprint != group_event(a).fingerprint  # but not the fingerprint without rules
    other = fast(capture(load_module(tmp_path, "c", "def h():\n    raise TimeoutError('timeout after 3s')\n").h,
                         service="shipping"))
    assert group_event(other, rules).fingerprint == group_event(other).fingerprint  # the service did not match


def test_stack_rules_take_frames_out_of_the_key(tmp_path: Path) -> None:
    mod = load_module(tmp_path, "shop.pay", SHOP)
    event = fast(capture(mod.pay, -1))
    trace: list[str] = []
    with_rules = group_event(event, parse_rules("stack.function:retry_* -group"), trace)
    assert with_rules.fingerprint != group_event(event).fingerprint
    assert any("retry_twice" in line and "out of the key" in line for line in trace)
    # and a frame marked not in-app stops counting as one
    assert group_event(event, parse_rules("stack.module:shop.* -app")).fingerprint != group_event(event).fingerprint


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("error.type:X -> a\nerror.kind:Y -> b", 2, "unknown matcher 'error.kind'"),
    ("error.type:X ->", 1, "empty fingerprint part"),
    ("error.type:X", 1, "expected '-> fingerprint' or a frame action"),
    ("service:billing -app", 1, "frame actions need a stack.* matcher"),
    ("error.type:X -> {{ nope }}", 1, "unknown variable"),
    ('message:"unterminated -> x', 1, "cannot read"),
])
def test_a_bad_rule_is_refused_with_its_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(RulesError) as err:
        parse_rules(text)
    assert any(p.startswith(f"line {line}:") and reason in p for p in err.value.problems), err.value.problems


def test_every_bad_line_is_reported_not_only_the_first() -> None:
    with pytest.raises(RulesError) as err:
        parse_rules("bogus:1 -> a\nerror.type:X -> ok\nalso:2 -> b")
    assert [p.split(":")[0] for p in err.value.problems] == ["line 1", "line 3"]


def test_the_version_in_force_is_the_newest_effective_at_the_records_time() -> None:
    book = RulesBook()
    v1, v2 = parse_rules("error.type:A -> a"), parse_rules("error.type:B -> b")
    book.add(2_000, v2)
    book.add(1_000, v1)
    assert book.at(999) is None and book.at(1_000) is v1 and book.at(1_999) is v1 and book.at(5_000) is v2
    book.add(3_000, parse_rules("# no rules any more"))
    assert book.at(3_000) is None


def test_rules_check_cli_reports_lines_and_exits_non_zero(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.rules", tmp_path / "bad.rules"
    good.write_text(RULES)
    bad.write_text("error.type:X -> a\nstack.module:vendor.* +sideways\n")
    ok = subprocess.run([sys.executable, "-m", "errstream.cli", "rules", "check", str(good)], capture_output=True,
                        text=True, cwd=REPO, timeout=60)
    assert ok.returncode == 0 and "2 fingerprint rule(s), 2 stack rule(s)" in ok.stdout
    refused = subprocess.run([sys.executable, "-m", "errstream.cli", "rules", "check", str(bad)],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert refused.returncode == 1 and "line 2:" in refused.stdout and "Traceback" not in refused.stderr


def test_grouping_explain_prints_the_parts_rules_fingerprint_and_title(tmp_path: Path) -> None:
    mod = load_module(tmp_path, "shop.pay", SHOP)
    event = capture(mod.checkout, service="checkout")
    (tmp_path / "event.json").write_text(event.model_dump_json())
    (tmp_path / "r.rules").write_text(RULES)
    out = subprocess.run([sys.executable, "-m", "errstream.cli", "grouping", "explain", str(tmp_path / "event.json"),
                          "--rules", str(tmp_path / "r.rules")], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    rules = parse_rules(RULES)
    expected = group_event(event_from_model(event), rules)
    assert "exception 0 (root cause): type ConnectionError" in out.stdout
    assert "fingerprint rule at line 3 fired: error.type:ConnectionError -> database-unavailable" in out.stdout
    assert f"fingerprint: {expected.fingerprint}" in out.stdout and "title:       ConnectionError: db down" in out.stdout
    assert f"rules:       {rules.version}" in out.stdout and "grouping:    version 2, platform python" in out.stdout
    assert json.loads((tmp_path / "event.json").read_text())["service"] == "checkout"


def test_grouping_rules_are_reached_as_errstream_grouping_rules_and_by_their_short_name() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for argv in (["grouping", "rules", "--help"], ["rules", "--help"]):
        done = subprocess.run([sys.executable, "-m", "errstream.cli", *argv], capture_output=True, text=True,
                              timeout=60, cwd=root)
        assert done.returncode == 0 and "check" in done.stdout and "apply" in done.stdout, done.stderr
