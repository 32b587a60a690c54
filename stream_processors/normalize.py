"""Message parameterisation: the variable parts of a message become typed placeholders.

``connect to 10.0.3.7:5432 refused after 3/5 retries`` and
``connect to 10.0.9.1:5432 refused after 4/5 retries`` are one problem, so both
become ``connect to <ip>:<num> refused after <num>/<num> retries``. Words stay
as they are: ``refused`` and ``reset`` are different problems and must stay apart.

Why rules and not a learned clusterer (Drain and friends): a message's key must
be a pure function of the message, identical in every worker process and after
every restart, because the fingerprint is derived from it. A clusterer's key
depends on what it saw before. The rules run in a fixed order, most specific
first (a URL contains a host, a path and numbers; it must be masked as a whole
before the smaller rules see its parts).
"""

from __future__ import annotations

import re
from functools import lru_cache

from errstream_core.scrub import sensitive

_HEX = r"[0-9a-fA-F]"
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
          r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_WEEKDAY = r"(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)\.?"

# (pattern, placeholder), applied in order. Every pattern is compiled once at import.
_RULES: list[tuple[re.Pattern[str], str]] = [
    # secrets first, with the scrubber's own placeholders, so scrubbing never changes a key
    (sensitive.URL_USERINFO, sensitive.USERINFO_REPLACEMENT),
    (sensitive.SECRET_ASSIGNMENT, sensitive.SECRET_REPLACEMENT),
    (sensitive.EMAIL, sensitive.PLACEHOLDER_EMAIL),
    (sensitive.AUTH_SCHEME, sensitive.PLACEHOLDER_TOKEN),
    (sensitive.API_KEY, sensitive.PLACEHOLDER_TOKEN),
    # a card number is a long number: scrubbed (<card>) or not, Luhn-valid or not, it is <num>
    (sensitive.CARD_CANDIDATE, "<num>"),
    (re.compile(re.escape(sensitive.PLACEHOLDER_CARD)), "<num>"),
    # IPv4 here too, because the scrubber may replace addresses with <ip> (ERRSTREAM_SCRUB_IP_ADDRESSES)
    (sensitive.IPV4, sensitive.PLACEHOLDER_IP),
] + [
    (re.compile(p), r) for p, r in [
        # quoted literals: what a program quotes is data ('user_id', 'acme corp', "O'Brien & Sons"). A
        # single quote opens only where no word char precedes it and closes only where none follows, so
        # the apostrophes of don't and Bob's never pair up with each other. A double-quoted text with
        # spaces is masked whole only when it holds an apostrophe (a name); otherwise it is often a
        # structured field ("GET /v2/servers HTTP/1.1") whose words matter, and the rules below see it.
        ((r"(?<![\w'])'[^'\n]{0,200}'(?![\w'])|\"[^\"\s]{0,200}\""
          r"|\"[^\"\n]{0,100}(?<=\w)'(?=\w)[^\"\n]{0,100}\""), "<str>"),
        (r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]{0,30}+://[^\s\"'<>]+", "<url>"),
        (rf"\b{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}\b", "<uuid>"),
        # ISO 8601 and syslog/common-log timestamps, with optional fractions and zones
        (r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "<ts>"),
        (r"\b\d{1,2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2}(?: [+-]\d{4})?", "<ts>"),
        # dates written with names, with or without weekday, year, time and zone: RFC 1123
        # (Tue, 03 Nov 2026 10:15:00 GMT), ctime (Tue Nov  3 10:15:00 2026), syslog (Nov  3 10:15:00),
        # prose (3 November 2026, November 3, 2026)
        (rf"\b(?:{_WEEKDAY},? +)?(?:\d{{1,2}}(?:st|nd|rd|th)? +{_MONTH},? +\d{{4}}|{_MONTH} +\d{{1,2}}(?:st|nd|rd|th)?"
         rf"(?:,? +\d{{4}}\b)?(?=[ ,]+\d{{1,2}}:\d{{2}}|,? +\d{{4}}\b)(?:,? +\d{{4}})?)"
         rf"(?:,? +\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:[.,]\d+)?(?: *(?:[AP]M|[ap]m))?)?(?: +\d{{4}}\b)?"
         rf"(?: *(?:[A-Z]{{2,5}}|[+-]\d{{2}}:?\d{{2}})\b)?", "<ts>"),
        (rf"\b{_WEEKDAY},? +{_MONTH} +\d{{1,2}}\b(?:,? +\d{{4}})?", "<date>"),
        (r"\b\d{4}[-/.]\d{2}[-/.]\d{2}\b", "<date>"),
        (r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>"),
        (r"\b0[xX][0-9a-fA-F]+\b", "<addr>"),
        (r"\b(?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}\b", "<mac>"),
        (r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){5,7}(?::|[0-9a-fA-F]{1,4})(?![\w:])", "<ip>"),
        (r"(?<![\w.])(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}:?){0,6}(?![\w:])", "<ip>"),
        # host names (three or more DNS labels) and host:port endpoints vary per request like IPs do
        (r"(?<![\w./-])(?=[\w.-]*[a-zA-Z])[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+){2,}(?![\w/-])", "<host>"),
        (r"(?<![\w./-])[a-zA-Z][\w-]*(?=:\d+\b)", "<host>"),
        (r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}\b", "<ip>"),
        # a host name with an address inside (dsl-static-<ip>.example.net, <ip>.sh.example.at) is a host
        (r"(?<![\w.>-])[\w-]*<ip>(?:\.[\w-]+)+", "<host>"),
        # paths: absolute, Windows drive or ./relative, at least one separator
        (r"(?:(?<=[\s=:\"'(\[,])|^)(?:[A-Za-z]:)?(?:[/\\][^\s/\\:,;\"'()\[\]]+)+[/\\]?", "<path>"),
        # who: the word after "user" names one (session opened for user cyrus, invalid user test9); one
        # match takes "user" and its name together, so in "invalid user user" the name is not a keyword
        (r"\b(?<![-.])([Uu]ser) +(?!<|from\b|for\b)[\w.-]+", r"\1 <user>"),
        # hex ids: 8+ hex digits mixing letters and digits (commit shas, request ids)
        (rf"\b(?:(?={_HEX}*\d)(?={_HEX}*[a-fA-F]){_HEX}{{8,}}|(?<![.\w])0\d{{7,}})\b", "<hex>"),
        # identifiers mixing letters and digits (node-17, dn731, Thunderbird_A8): the digits make them data
        (r"(?<![\w.-])(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*\b", "<id>"),
        # the value in key=value pairs is data whatever its type (rhost=<ip> and rhost=<host> agree),
        # unless it is a flag or an enum constant (state=ACTIVE)
        ((r"(?<=\w=)(?!(?:true|false|null|None|True|False|[A-Z][A-Z0-9_]+)[\s,;)\]]|"
          r"(?:true|false|null|None|True|False|[A-Z][A-Z0-9_]+)$)[^\s,;=()\[\]]+"), "<val>"),
        # numbers, also inside tokens: retry 3/5, blk_-1608, user-42, 1.5s
        (r"(?<![A-Za-z0-9])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\d+(?:\.\d+)?", "<num>"),
    ]
]
_SPACES = re.compile(r"\s+")
# One slot holds values of one kind, but the kind a rule sees can change from value to value: a fixed-width
# hex id that happens to be all digits is a number, a host may come as an address, a user name may look
# like an identifier. In the key those kinds are one.
_SAME_KIND = [
    (re.compile(r"<(?:hex|id|num)>"), "<num>"), (re.compile(r"<(?:ip|host)>"), "<host>"),
    # an empty value is a value: "from 10.0.0.1 ()" and "from 10.0.0.1 (host.example.net)", "ruser= " and
    # "ruser=bob " fill one slot
    (re.compile(r"\((?:<[a-z]+>)?\)"), "(<*>)"), (re.compile(r"(?<=\w=)(?:<val>)?(?=[\s,;]|$)"), "<val>"),
]
# a variable-length list of the same kind of value is one value: "an14 an15 an16" → "<id>"
_REPEATS = re.compile(r"(<[a-z]+>)(?:[ ,]+\1)+")


def parameterize(message: str) -> str:
    """The message with variable parts replaced by typed placeholders, whitespace collapsed."""
    for pattern, placeholder in _RULES:
        message = pattern.sub(placeholder, message)
    message = _REPEATS.sub(r"\1", message)
    return _SPACES.sub(" ", message).strip()


@lru_cache(maxsize=65_536)
def message_key(message: str) -> str:
    """The grouping key of a message; cached because production messages repeat a lot."""
    key = parameterize(message)
    for pattern, kind in _SAME_KIND:
        key = pattern.sub(kind, key)
    return _REPEATS.sub(r"\1", key)
