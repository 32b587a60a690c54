"""The stream's search syntax, on the queries a triage engineer types."""

from __future__ import annotations

import pytest

from reports.search_syntax import MAX_TEXT, SearchError, parse


def test_keys_and_text() -> None:
    p = parse('is:unresolved level:error release:1.4.2 service:billing env:prod assigned:me card declined', me="ana")
    assert p.fields == {"status": ["open"], "level": "error", "release": "1.4.2", "service": "billing",
                        "environment": "prod", "assignee": "ana"}
    assert p.text == "card declined" and not p.text_cut


def test_a_pasted_error_message_is_text() -> None:
    p = parse("KeyError: 'cart_id' at http://shop/cart")
    assert p.fields == {} and p.text == "KeyError: 'cart_id' at http://shop/cart"


def test_quotes_repeats_and_case() -> None:
    p = parse('IS:resolved is:ignored is:resolved release:"1.4 beta" "database timeout" Level:CRITICAL')
    assert p.fields == {"status": ["resolved", "ignored"], "release": "1.4 beta", "level": "critical"}
    assert p.text == "database timeout"
    assert parse("is:unassigned").fields == {"assignee": "none"}
    assert parse("assigned:none service:a service:b").fields == {"assignee": "none", "service": "b"}


@pytest.mark.parametrize("query, reason", [
    ("is:sleeping", "is:sleeping is not a status"),
    ("level:loud", "level:loud is not a level"),
    ('release:""', "release: needs a value"),
    ("assigned:me", "needs to know who you are"),
    ("x" * 2001, "at most 2000"),
])
def test_what_cannot_mean_anything_says_why(query: str, reason: str) -> None:
    with pytest.raises(SearchError, match=reason):
        parse(query)


def test_long_text_is_cut_and_says_so() -> None:
    p = parse("is:open " + "timeout " * 60)
    assert p.text_cut and len(p.text) <= MAX_TEXT and p.fields == {"status": ["open"]}
