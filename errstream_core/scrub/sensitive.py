"""Patterns for secrets and personal data inside free text, shared by scrubbing and parameterisation.

They live in one place because the two must agree: the scrubber replaces an
e-mail address with ``<email>``, and the parameteriser turns the original
address into the same ``<email>`` before any other rule runs, so an event's
grouping key is the same before and after scrubbing (a fingerprint that
changed when a secret was removed would split one bug into two issues). Every
placeholder is a fixed point of every pattern here.
"""

from __future__ import annotations

import re

# Every pattern starts at the beginning of a token (a lookbehind) or at a literal, and bounds what it
# scans, so a hostile 8 KB message costs milliseconds, not seconds: a pattern that may start at every
# character and scan to the end of the token is quadratic (tests/unit/test_normalize.py::test_hostile_*).
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
# The password of a URL's userinfo, any scheme: "redis://:pw@cache:6379/0", "postgres://admin:pw@db:5432/x".
# Up to the last "@" before the path, so an unencoded "@" inside the password goes too.
URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,30}://[^\s/?#@:]{0,200}):(?!\[Filtered\]@)[^\s/?#]{0,400}@")
USERINFO_REPLACEMENT = r"\1:[Filtered]@"
# "scheme://user@" (kept) or an e-mail address: one pass, so an address never starts inside a URL's authority
EMAIL_OR_AUTHORITY = re.compile(
    r"(?P<authority>\b[a-z][a-z0-9+.-]{0,30}://[^\s/?#@]{0,200}@)|" + EMAIL.pattern, re.IGNORECASE)
# "Bearer <anything>" and "Basic <base64>" in headers or messages
AUTH_SCHEME = re.compile(r"(?i)(?<=\bbearer )(?!<token>)[\w~+/.=-]+|(?<=\bbasic )(?!<token>)[A-Za-z0-9+/=]{8,}")
# Keys with well-known prefixes (Stripe, GitHub, Slack, AWS, OpenAI-style, Google) and JWTs.
API_KEY = re.compile(
    r"\b(?:"
    r"(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|A(?:KIA|SIA)[A-Z0-9]{16}"
    r"|sk-[A-Za-z0-9_-]{20,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r")"
)
# "password=hunter2", "api_key: abc", "token=…" inside free text: the value goes, the key stays
SENSITIVE_WORDS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth)"
SECRET_ASSIGNMENT = re.compile(
    # the match starts at the word, not at the start of the key ("client_secret" from "secret"):
    # a leading [\w.-]* would backtrack quadratically over every word of the text
    rf"(?i)({SENSITIVE_WORDS}[\w.-]{{0,40}}\s*[=:]\s*)"
    r"(?!<secret>|\[Filtered\]|(?:bearer|basic)\s)"  # already scrubbed, or an auth scheme (AUTH_SCHEME's job)
    r"(?:\"[^\"]{0,200}\"|'[^']{0,200}'|[^\s&,;]+)"
)
# Source code: a quoted key naming a secret and its quoted value ('"password": "hunter2"', "c['api_key'] = 'x'",
# '"Cookie": "session=…"'),
# which SECRET_ASSIGNMENT leaves (its key is not quoted). Only for the lines around a frame's line (pre_context,
# post_context): applied to messages or context_line it would change grouping keys.
QUOTED_SECRET = re.compile(
    rf"(?i)([\"'][\w.-]{{0,40}}?(?:{SENSITIVE_WORDS}|cookie|session|credential)[\w.-]{{0,40}}[\"']\]?\s*[=:]\s*)"
    r"(?!<secret>|\[Filtered\])(?:\"[^\"]{0,200}\"|'[^']{0,200}')"
)
# 13–19 digits, optionally grouped by single spaces or dashes: candidates, confirmed by Luhn.
CARD_CANDIDATE = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)")
IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}\b(?!\.\d)")

PLACEHOLDER_EMAIL = "<email>"
PLACEHOLDER_TOKEN = "<token>"
PLACEHOLDER_SECRET = "<secret>"
PLACEHOLDER_CARD = "<card>"
PLACEHOLDER_IP = "<ip>"
SECRET_REPLACEMENT = r"\1" + PLACEHOLDER_SECRET


def luhn_valid(digits: str) -> bool:
    """The check card numbers carry; it tells a card from an order id of the same length."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0
