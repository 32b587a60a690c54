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
from typing import NamedTuple

from errstream_core.scrub import sensitive

_HEX = r"[0-9a-fA-F]"
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
          r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_SOURCE_SUFFIX = r"(?:py[cwo]?|pyx|js|mjs|cjs|ts|tsx|jsx|rb|java|kt|scala|go|rs|c|cc|cpp|h|hpp|cs|php|swift)"
_WEEKDAY = r"(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)\.?"

class _Rule(NamedTuple):
    """One rule, and what a message must hold for it to match at all.

    Most messages hold no e-mail, URL, path or key=value, and a regular expression that cannot match still
    costs a scan of the whole message: a substring test first makes such a rule nearly free. ``needs`` is
    a necessary condition, never a sufficient one: the rule runs when any of those strings occurs in the
    message (its lower-cased original when ``folded``, for the case-insensitive secret rules) and, when
    ``digit`` is set, when the original message holds a digit (no placeholder holds one, so a message
    without digits never gets one).
    """

    pattern: re.Pattern[str]
    replacement: str
    needs: tuple[str, ...] = ()
    digit: bool = False
    folded: bool = False


def _rule(pattern: str, replacement: str, needs: tuple[str, ...] = (), digit: bool = False) -> _Rule:
    return _Rule(re.compile(pattern), replacement, needs, digit)


_DIGIT = re.compile(r"\d")
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth")  # sensitive.SENSITIVE_WORDS, lower-cased

# Applied in order. Every pattern is compiled once at import.
_RULES: list[_Rule] = [
    # secrets first, with the scrubber's own placeholders, so scrubbing never changes a key
    _Rule(sensitive.URL_USERINFO, sensitive.USERINFO_REPLACEMENT, ("@",)),
    _Rule(sensitive.SECRET_ASSIGNMENT, sensitive.SECRET_REPLACEMENT, _SECRET_WORDS, folded=True),
    _Rule(sensitive.EMAIL, sensitive.PLACEHOLDER_EMAIL, ("@",)),
    _Rule(sensitive.AUTH_SCHEME, sensitive.PLACEHOLDER_TOKEN, ("bearer ", "basic "), folded=True),
    _Rule(sensitive.API_KEY, sensitive.PLACEHOLDER_TOKEN),
    # a card number is a long number: scrubbed (<card>) or not, Luhn-valid or not, it is <num>
    _Rule(sensitive.CARD_CANDIDATE, "<num>", digit=True),
    _Rule(re.compile(re.escape(sensitive.PLACEHOLDER_CARD)), "<num>", (sensitive.PLACEHOLDER_CARD,)),
    # IPv4 here too, because the scrubber may replace addresses with <ip> (ERRSTREAM_SCRUB_IP_ADDRESSES)
    _Rule(sensitive.IPV4, sensitive.PLACEHOLDER_IP, (".",), digit=True),
    # quoted literals: what a program quotes is data ('user_id', 'acme corp', "O'Brien & Sons"). A
    # single quote opens only where no word char precedes it and closes only where none follows, so
    # the apostrophes of don't and Bob's never pair up with each other. A double-quoted text with
    # spaces is masked whole only when it holds an apostrophe (a name); otherwise it is often a
    # structured field ("GET /v2/servers HTTP/1.1") whose words matter, and the rules below see it.
    _rule((r"(?<![\w'])'[^'\n]{0,200}'(?![\w'])|\"[^\"\s]{0,200}\""
      r"|\"[^\"\n]{0,100}(?<=\w)'(?=\w)[^\"\n]{0,100}\"|(?<==)\"[^\"\n]{0,200}\""), "<str>", ("'", '"')),
    # a URL ends before sentence punctuation: "see https://x.example/a." or "x-coredata://…/p11: failed"
    _rule(r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]{0,30}+://[^\s\"'<>]*[^\s\"'<>.,:;!?]", "<url>", ("://",)),
    _rule(rf"\b{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}\b", "<uuid>", ("-",)),
    # ISO 8601 and syslog/common-log timestamps, with optional fractions and zones
    _rule(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "<ts>", digit=True),
    _rule(r"\b\d{1,2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2}(?: [+-]\d{4})?", "<ts>", digit=True),
    # dates written with names, with or without weekday, year, time and zone: RFC 1123
    # (Tue, 03 Nov 2026 10:15:00 GMT), ctime (Tue Nov  3 10:15:00 2026), syslog (Nov  3 10:15:00),
    # prose (3 November 2026, November 3, 2026)
    _rule(rf"\b(?:{_WEEKDAY},? +)?(?:\d{{1,2}}(?:st|nd|rd|th)? +{_MONTH},? +\d{{4}}|{_MONTH} +\d{{1,2}}(?:st|nd|rd|th)?"
     rf"(?:,? +\d{{4}}\b)?(?=[ ,]+\d{{1,2}}:\d{{2}}|,? +\d{{4}}\b)(?:,? +\d{{4}})?)"
     rf"(?:,? +\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:[.,]\d+)?(?: *(?:[AP]M|[ap]m))?)?(?: +\d{{4}}\b)?"
     rf"(?: *(?:[A-Z]{{2,5}}|[+-]\d{{2}}:?\d{{2}})\b)?", "<ts>", digit=True),
    _rule(rf"\b{_WEEKDAY},? +{_MONTH} +\d{{1,2}}\b(?:,? +\d{{4}})?", "<date>", digit=True),
    _rule(r"\b\d{4}[-/.]\d{2}[-/.]\d{2}\b", "<date>", digit=True),
    # a MAC address before times: 5c:50:15:36:bc:03 holds a time-looking 50:15:36
    _rule(r"\b(?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}\b", "<mac>", (":", "-")),
    _rule(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>", (":",), digit=True),
    _rule(r"\b0[xX][0-9a-fA-F]+\b", "<addr>", ("0x", "0X")),
    _rule(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){5,7}(?::|[0-9a-fA-F]{1,4})(?![\w:])", "<ip>", (":",)),
    _rule(r"(?<![\w.])(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}:?){0,6}(?![\w:])", "<ip>", (":",)),
    # host names (three or more DNS labels) and host:port endpoints vary per request like IPs do; the
    # whole dotted name or nothing: android.intent.action.SCREEN_ON (a label with "_") is a constant
    _rule(r"(?<![\w./-])(?=[\w.-]*[a-zA-Z])[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+){2,}+(?![\w/-]|\.\w)", "<host>", (".",)),
    # but a source file and its line (views.py:42) is a place in the code: its name stays
    _rule(rf"(?<![\w./-])[a-zA-Z][\w-]*+(?:\.(?!{_SOURCE_SUFFIX}:)[a-zA-Z][\w-]*+)*+(?=:\d+\b)", "<host>", (":",),
          digit=True),
    _rule(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}\b", "<ip>", (".",), digit=True),
    # a host name with an address inside (dsl-static-<ip>.example.net, <ip>.sh.example.at) is a host
    _rule(r"(?<![\w.>-])[\w-]*<ip>(?:\.[\w-]+)+", "<host>", ("<ip>",)),
    # paths: absolute, Windows drive or ./relative, at least one separator, doubled separators included
    # (/home/yates//bandwidth.rts is one path)
    _rule(r"(?:(?<=[\s=:\"'(\[,])|^)(?:[A-Za-z]:|\.\.?)?(?:[/\\]+[^\s/\\:,;\"'()\[\]]+)+[/\\]?", "<path>", ("/", "\\")),
    # quantities with a unit: the number and its unit are one value ("93.0 B" and "5.2 KB" fill one
    # slot; so do "1.5s", "250 ms" and "3 seconds"). A size followed by the same size in another unit,
    # "1190 bytes (1.16 KB)", is one size; a bound glued to a duration ("<1 sec") belongs to it.
    _rule(r"(?<![\w.])[-+]?\d+(?:\.\d+)? ?(?:[KMGTPE]i?B|(?i:[kmgtpe]i?b)|bytes?|B)\b"
     r"(?: ?\(\d+(?:\.\d+)? ?(?:[KMGTPE]i?B|(?i:[kmgtpe]i?b)|bytes?|B)\))?", "<size>", digit=True),
    _rule(r"(?:(?<![\w.<>])[<>~]|(?<![\w.]))[-+]?\d+(?:\.\d+)? ?(?:[nuµm]s|s|secs?|seconds?|mins?|minutes?|h|hrs?"
     r"|hours?|days?)\b", "<dur>", digit=True),
    # who: the word after "user" names one (session opened for user cyrus, invalid user test9); one
    # match takes "user" and its name together, so in "invalid user user" the name is not a keyword
    _rule(r"\b(?<![-.])([Uu]ser) +(?!<|from\b|for\b)[\w.-]+", r"\1 <user>", ("user ", "User ")),
    # hex ids: 8+ hex digits mixing letters and digits (commit shas, request ids)
    _rule(rf"\b(?:(?={_HEX}*\d)(?={_HEX}*[a-fA-F]){_HEX}{{8,}}|(?<![.\w])0\d{{7,}})\b", "<hex>", digit=True),
    # identifiers mixing letters and digits (node-17, dn731, Thunderbird_A8): the digits make them data
    _rule(r"(?<![\w.-])(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*\b", "<id>", digit=True),
    # the value in key=value pairs is data whatever its type (rhost=<ip> and rhost=<host> agree),
    # unless it is a flag or an enum constant (state=ACTIVE); null and None are values (an absent one,
    # as the empty value is): ws=null and ws=WorkSource{10113} fill one slot
    _rule((r"(?<=\w=)(?!(?:true|false|True|False|[A-Z][A-Z0-9_]+)[\s,;)\]]|"
      r"(?:true|false|True|False|[A-Z][A-Z0-9_]+)$)[^\s,;=()\[\]]+"), "<val>", ("=",)),
    # numbers, also inside tokens: retry 3/5, blk_-1608, user-42, 1.5s
    _rule(r"(?<![A-Za-z0-9])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\d+(?:\.\d+)?", "<num>", digit=True),
]
_SPACES = re.compile(r"\s+")
# a variable-length list of the same kind of value is one value: "an14 an15 an16" → "<id>"
_REPEATS = re.compile(r"(<[a-z]+>)(?:[ ,]+\1)+")

# The key says where the values are, not what they are. One slot holds values of one kind, but the kind a
# rule sees changes from value to value: a fixed-width hex id that happens to be all digits is a number, a
# peer comes as an address or a host name, a job label as a URL or a dotted name, a size as "0 bytes" or
# "1190 bytes (1.16 KB)". So every placeholder is one <*> in the key, and so is every token made only of
# values and punctuation: "<host>:<num>" (and "<host>:<secret>" when the scrubber took auth.example.com:443
# for a secret), "#3#", "3/5", "******2341", "<id>:<ip>". Letters keep a token a word, so "RoamFail:sts:<id>"
# and "AssocFail:sts:<id>", "NewConnectionError(<str>)" and "ReadTimeoutError(<str>)" stay apart. A token
# ends at white space and at the separators of lists, key=value pairs and calls (, ; | = ( ) [ ] { }); the
# sentence punctuation and quotes around it stay outside ("port 5432." is "port <*>.").
_KINDS = "|".join(sorted({kind for rule in _RULES for kind in re.findall(r"<([a-z]+)>", rule.replacement)}))
_EDGE = r"\s,;|=()\[\]{}"
_PLACEHOLDER = rf"<(?:{_KINDS})>"
_VALUE_PART = rf"(?:{_PLACEHOLDER}|[^\w{_EDGE}]|_)*?"  # lazy, so the sentence punctuation stays outside
_VALUE = re.compile(rf"(?<![^{_EDGE}])([\"']*){_VALUE_PART}{_PLACEHOLDER}{_VALUE_PART}([.:!?\"']*)(?![^{_EDGE}])")
_KEY_RULES = [
    (_VALUE, r"\1<*>\2"),
    # an empty value is a value: "from 10.0.0.1 ()" and "from 10.0.0.1 (host.example.net)", "ruser= " and
    # "ruser=bob " fill one slot
    (re.compile(_PLACEHOLDER), "<*>"),  # inside words too: "QQ.<num>" and "QQ.<hex>"
    (re.compile(r"\(\)"), "(<*>)"), (re.compile(r"(?<=\w=)(?=[\s,;]|$)"), "<*>"),
    # a variable-length list of values is one value: "3 4 5 6 7 10 11 12" → "<*>"
    (re.compile(r"<\*>(?:[ ,]+<\*>)+"), "<*>"),
]


def parameterize(message: str) -> str:
    """The message with variable parts replaced by typed placeholders, whitespace collapsed."""
    has_digit = _DIGIT.search(message) is not None
    folded = message.lower()
    for rule in _RULES:
        if rule.digit and not has_digit:
            continue
        if rule.needs:
            text = folded if rule.folded else message
            for needle in rule.needs:
                if needle in text:
                    break
            else:
                continue
        message = rule.pattern.sub(rule.replacement, message)
    message = _REPEATS.sub(r"\1", message)
    return _SPACES.sub(" ", message).strip()


@lru_cache(maxsize=65_536)
def message_key(message: str) -> str:
    """The grouping key of a message; cached because production messages repeat a lot."""
    key = parameterize(message)
    for pattern, replacement in _KEY_RULES:
        key = pattern.sub(replacement, key)
    return key


# Grouping version 2 (fingerprint.py) adds what messages of other platforms carry before the rules above:
# Go's compound durations (``1m30.5s``, ``2h3m``) would otherwise leave a ``<*>.<*>s`` that counts the units.
_COMPOUND_DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:h\d+(?:\.\d+)?m(?:\d+(?:\.\d+)?(?:s|ms|µs|us|ns))?"
                                r"|m\d+(?:\.\d+)?(?:s|ms|µs|us|ns))\b")


# ``[fe80::1%eth0]:5432`` is one address, as ``2001:db8::5`` is: the brackets and port must not make a
# different key from the bare address
_BRACKETED_IPV6 = re.compile(r"\[([0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%[\w.-]+)?)\](?::\d+)?")
# V8's ``Cannot read properties of undefined (reading 'amount')``: the property is the program's word, not a
# value (what tells two bugs of a minified bundle apart)
_V8_PROPERTY = re.compile(r"\((reading|setting) '([A-Za-z_$][\w$]*)'\)")


@lru_cache(maxsize=65_536)
def grouping_message_key(message: str) -> str:
    """The message key of grouping version 2: ``message_key`` after the platform-neutral additions.

    Version 1's fingerprints keep using ``message_key`` unchanged, so the previous version's fingerprint
    of an event is computed exactly as it was (the upgrade transition relies on it).
    """
    if "m" in message and _DIGIT.search(message) is not None:
        message = _COMPOUND_DURATION.sub("1s", message)
    if "[" in message:
        message = _BRACKETED_IPV6.sub(r"\1", message)
    if "(reading '" in message or "(setting '" in message:
        message = _V8_PROPERTY.sub(r"(\1 \2)", message)
    return message_key(message)
