"""PII and secret scrubbing, applied to an event before anything is stored or forwarded.

Where it runs: in the SDK before an event leaves the service (``scrub=False``
opts out), in the gateway before it publishes to Kafka (as Sentry's Relay does),
and in the worker, which scrubs every event again because producers in other
languages write to ``errors`` directly. Scrubbing is idempotent (a scrubbed
event scrubs to itself), so running it at each of these steps costs time, never
data.

Two mechanisms, as in Sentry's server-side data scrubbing:

* by key name: the value of any tag, context entry, request header, query
  parameter or breadcrumb data entry whose key looks sensitive (password,
  secret, token, authorization, cookie, …) becomes ``[Filtered]``;
* by value: inside free text (messages, exception values, breadcrumb messages,
  tag and context values, URLs) e-mail addresses, Luhn-valid card numbers,
  bearer/basic credentials, API-key-shaped strings and ``password=…``
  assignments are replaced by typed placeholders (``<email>``, ``<card>``,
  ``<token>``, ``<secret>``). The placeholders are the ones message
  parameterisation produces, so scrubbing never changes a fingerprint.

Optionally (configuration) IP addresses and user ids are replaced by a keyed
hash: still distinct per user, so "users affected" keeps working, but not
reversible without the key. ``user.email`` is always hashed that way. A value
already hashed (``email:<16 hex>``) is kept, so a second pass changes nothing.

Credentials in connection URLs of any scheme (``redis://:pw@cache:6379/0``,
``postgres://admin:pw@db.internal:5432/app``) lose the password of their
userinfo, and an e-mail-shaped ``user@host`` inside a URL is not taken for an
e-mail address.

Source lines of stack frames (``context_line``, ``pre_context``, ``post_context``) are scrubbed like messages:
they are code, but code such as ``raise ConnectionError("…admin:pw@db …
jane@example.com")`` carries the very literal the message had scrubbed. The
same lines come back in event after event, so the memo makes this cheap. A frame's
local variables (``vars``) are scrubbed like ``context``: they are where passwords,
tokens and addresses sit in plain text.

Every other field that can hold a person's identity: ``user.id`` and
``user.username`` holding an e-mail address are hashed like ``user.email``
(and ``user.username`` like ``user.id`` when user ids are hashed); e-mail
addresses inside a custom fingerprint become their keyed hash (distinct per
address, so per-user grouping keeps working) and its other secrets are
scrubbed like text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from errstream_core.scrub import sensitive
from errstream_core.settings import Settings
from schemas import events as models
from schemas import fast

# The model (tests, producers) or its msgspec mirror (gateway, worker): the same type comes back.
E = TypeVar("E", models.ErrorEvent, fast.ErrorEvent)
FILTERED = "[Filtered]"
DEFAULT_SENSITIVE_KEYS: tuple[str, ...] = (
    "password", "passwd", "pwd", "secret", "token", "apikey", "api_key", "accesskey", "access_key",
    "privatekey", "private_key", "auth", "credential", "cookie", "session", "csrf", "xsrf", "signature",
    "cardnumber", "creditcard", "cvv", "ssn",
)
_KEY_SEPARATORS = str.maketrans("", "", "-_ .")


@dataclass(frozen=True)
class ScrubConfig:
    hash_ip_addresses: bool = False
    hash_user_ids: bool = False
    hash_key: str = ""  # keys the user/IP hashes; set it per deployment so hashes cannot be looked up
    sensitive_keys: tuple[str, ...] = DEFAULT_SENSITIVE_KEYS
    _key_words: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = tuple(sorted({k.lower().translate(_KEY_SEPARATORS) for k in self.sensitive_keys if k}))
        object.__setattr__(self, "_key_words", words)

    def is_sensitive_key(self, key: str) -> bool:
        norm = key.lower().translate(_KEY_SEPARATORS)
        return any(word in norm for word in self._key_words)


def _key_checker(config: ScrubConfig) -> Callable[[Any], bool]:
    """``config.is_sensitive_key`` memoised: the same few dozen key names come back in every event."""
    return lru_cache(maxsize=4_096)(lambda key: config.is_sensitive_key(str(key)))


def _email_not_authority(match: re.Match[str]) -> str:
    """E-mail addresses become <email>; a URL's ``scheme://user@`` stays as it is."""
    return match.group(0) if match.group("authority") else sensitive.PLACEHOLDER_EMAIL


_HASHED = re.compile(r"^(?:email|id|ip):[0-9a-f]{16}$")


def _card_or_digits(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = text.replace(" ", "").replace("-", "")
    return sensitive.PLACEHOLDER_CARD if sensitive.luhn_valid(digits) else text


# Cheap tests that say whether a pattern could match at all: most strings (tag values,
# "GET /api/items/7", "connect to 10.0.3.7:5432 refused") need none of the replacements.
# Substring tests run in C at a few tens of ns; one regex alternation of all the hints costs
# ~2 µs per string in sre, which tries every branch at every position.
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth")
_API_KEY_HINT = re.compile(r"[sprk]k_|sk-|gh[pousr]_|xox|A[KS]IA|AIza|eyJ")
_CARD_HINT = re.compile(r"(?:\d[ -]?){12}\d")
_IPV4_HINT = re.compile(r"\d\.\d")


def scrub_text(text: str, *, ip_addresses: bool = False) -> str:
    """Secrets and personal data inside one string replaced by typed placeholders.

    Returns the very same object when there was nothing to replace, so callers
    can skip work with an identity check.
    """
    if len(text) < 5:  # shorter than "pwd=x", the shortest thing any pattern replaces
        return text
    low = text.lower()
    if ("=" in text or ":" in text) and any(word in low for word in _SECRET_WORDS):
        text = sensitive.SECRET_ASSIGNMENT.sub(sensitive.SECRET_REPLACEMENT, text)
    if "@" in text:
        if "://" in text:
            text = sensitive.URL_USERINFO.sub(sensitive.USERINFO_REPLACEMENT, text)
            text = sensitive.EMAIL_OR_AUTHORITY.sub(_email_not_authority, text)
        else:
            text = sensitive.EMAIL.sub(sensitive.PLACEHOLDER_EMAIL, text)
    if "bearer " in low or "basic " in low:
        text = sensitive.AUTH_SCHEME.sub(sensitive.PLACEHOLDER_TOKEN, text)
    if ("_" in text or "-" in text or "eyj" in low or "ai" in low) and _API_KEY_HINT.search(text):
        text = sensitive.API_KEY.sub(sensitive.PLACEHOLDER_TOKEN, text)
    if _CARD_HINT.search(text):
        text = sensitive.CARD_CANDIDATE.sub(_card_or_digits, text)
    if ip_addresses and _IPV4_HINT.search(text):
        text = sensitive.IPV4.sub(sensitive.PLACEHOLDER_IP, text)
    return text


_MEMO_MAX_LEN = 256  # memoised strings are at most this long: the memo stays under ~5 MB

_QUERY_PARAM = re.compile(r"([?&;]|^)([^=&;#]+)=([^&;#]*)")


class Scrubber:
    """Scrubs events in place; one instance per worker, configuration fixed at start."""

    def __init__(self, config: ScrubConfig | None = None) -> None:
        self.config = config or ScrubConfig()
        self._ips = self.config.hash_ip_addresses
        self._sensitive = _key_checker(self.config)
        ips = self._ips

        def changed(value: str) -> str | None:  # None: nothing to scrub (most strings)
            new = scrub_text(value, ip_addresses=ips)
            return None if new == value else new

        self._memo: Callable[[str], str | None] = lru_cache(maxsize=16_384)(changed)
        # a frame's surrounding source lines come back with every event of its issue (ten per frame)
        self._line_memo: Callable[[str], str] = lru_cache(maxsize=16_384)(self._scrub_source_line)

        key = self.config.hash_key.encode()[:64]

        @lru_cache(maxsize=16_384)  # the same users come back in event after event
        def hash_value(kind: str, value: str) -> str:
            return f"{kind}:{hashlib.blake2b(value.encode(), digest_size=8, key=key).hexdigest()}"

        self.hash_value: Callable[[str, str], str] = hash_value  # kind ("email", "id", "ip"), value

    def text(self, value: str) -> str:
        """``scrub_text`` with this configuration; short strings are memoised, since header values,
        tag values and breadcrumb messages repeat from event to event."""
        if len(value) > _MEMO_MAX_LEN:
            return scrub_text(value, ip_addresses=self._ips)
        scrubbed = self._memo(value)
        return value if scrubbed is None else scrubbed

    def _mapping(self, data: dict[str, Any]) -> dict[str, Any]:
        """Scrubbed copy of ``data``, or ``data`` itself when nothing in it changed.

        Written as one tight loop: it runs for tags, headers, context and every breadcrumb's
        data, ten or more times per event, and the common value is a short clean string.
        """
        out: dict[str, Any] | None = None
        sensitive, text = self._sensitive, self.text
        for key, value in data.items():
            if sensitive(key):
                new: Any = FILTERED
            elif value.__class__ is str:
                new = text(value)
            elif isinstance(value, dict | list):
                new = self._value(value)
            else:
                continue
            if new is not value:
                if out is None:
                    out = dict(data)
                out[key] = new
        return data if out is None else out

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return self._mapping(value)
        if isinstance(value, list):
            new = [self._value(v) for v in value]
            return value if all(a is b for a, b in zip(new, value, strict=True)) else new
        return value

    def _query(self, query: str) -> str:
        if ";" in query or "#" in query:  # rare separators: the general (slower) path
            def repl(m: re.Match[str]) -> str:
                value = FILTERED if self._sensitive(m.group(2)) else m.group(3)
                return f"{m.group(1)}{m.group(2)}={value}"

            return self.text(_QUERY_PARAM.sub(repl, query))
        # "a=1&b=2": each parameter alone, so the memo sees "token=…" and "page=2" rather than a
        # whole query string that differs in every event
        sensitive, text = self._sensitive, self.text
        params = query.split("&")
        changed = False
        for i, param in enumerate(params):
            key, eq, _ = param.partition("=")
            new = f"{key}={FILTERED}" if eq and key and sensitive(key) else text(param)
            if new is not param:
                params[i] = new
                changed = True
        return "&".join(params) if changed else query

    def _url(self, url: str) -> str:
        base, sep, query = url.partition("?")
        return self.text(base) + (sep + self._query(query) if sep else "")

    def scrub(self, event: E) -> E:
        """The same event object, scrubbed (the caller owns it; copying would double the cost).

        Fields are visited inline, not through a generic getattr/setattr helper: this runs for
        every event. Scrubbers return their input when nothing changed, so assigning back is cheap.
        """
        text, mapping = self.text, self._mapping
        if event.message:
            event.message = text(event.message)
        for exc in event.exceptions:
            if exc.value:
                exc.value = text(exc.value)
            for frame in exc.stacktrace:
                if frame.context_line:
                    frame.context_line = text(frame.context_line)
                if frame.vars or frame.pre_context or frame.post_context:  # rare: one test for all three
                    self._frame_extras(frame)
        if event.fingerprint:
            event.fingerprint = [self._fingerprint_part(part) for part in event.fingerprint]
        for crumb in event.breadcrumbs:
            if crumb.message:
                crumb.message = text(crumb.message)
            if crumb.data:
                crumb.data = mapping(crumb.data)
        if event.tags:
            event.tags = mapping(event.tags)
        if event.context:
            event.context = mapping(event.context)
        request = event.request
        if request is not None:
            if request.headers:
                request.headers = mapping(request.headers)
            if request.url:
                request.url = self._url(request.url)
            if request.query_string:
                request.query_string = self._query(request.query_string)
        user = event.user
        if user is not None:  # hashed values are kept as they are: scrubbing twice changes nothing
            if user.email and not _HASHED.match(user.email):
                user.email = self.hash_value("email", user.email)
            if user.id and not _HASHED.match(user.id) and (self.config.hash_user_ids or "@" in user.id):
                user.id = self._identity(user.id)
            if user.username and not _HASHED.match(user.username) and (
                    self.config.hash_user_ids or "@" in user.username):
                user.username = self._identity(user.username)
            if self._ips and user.ip_address and not _HASHED.match(user.ip_address):
                user.ip_address = self.hash_value("ip", user.ip_address)
        return event

    def _frame_extras(self, frame: Any) -> None:
        """A frame's surrounding source lines (like ``context_line``) and its locals (like ``context``: keys such
        as ``password`` filtered, secrets, card numbers and e-mail addresses in values replaced)."""
        if frame.pre_context:
            frame.pre_context = [self._source_line(line) for line in frame.pre_context]
        if frame.post_context:
            frame.post_context = [self._source_line(line) for line in frame.post_context]
        if frame.vars:
            frame.vars = self._mapping(frame.vars)

    def _source_line(self, line: str) -> str:
        return self._scrub_source_line(line) if len(line) > _MEMO_MAX_LEN else self._line_memo(line)

    def _scrub_source_line(self, line: str) -> str:
        """A line of code: as text, and a quoted secret key's quoted value too (``"password": "hunter2"``)."""
        line = self.text(line)
        return sensitive.QUOTED_SECRET.sub(sensitive.SECRET_REPLACEMENT, line) if "=" in line or ":" in line else line

    def _identity(self, value: str) -> str:
        """An e-mail address hashes as ``email:`` (the same hash as ``user.email``), anything else as ``id:``.

        Only called when ids are hashed, or when the value contains ``@``: an id like ``user-42`` is kept
        unless ``ERRSTREAM_SCRUB_USER_IDS`` asks for hashing, but ``jane@example.com`` never is.
        """
        if sensitive.EMAIL.fullmatch(value.strip()):
            return self.hash_value("email", value.strip())
        if self.config.hash_user_ids or sensitive.EMAIL.search(value):
            return self.hash_value("id", value)
        return value

    def _fingerprint_part(self, part: str) -> str:
        """E-mail addresses become their keyed hash (a per-user fingerprint stays per user), secrets are scrubbed."""
        if "@" in part:
            part = sensitive.EMAIL.sub(lambda m: self.hash_value("email", m.group(0)), part)
        return self.text(part)

    @classmethod
    def from_settings(cls, settings: Settings) -> Scrubber:
        """The deployment's scrubbing (ERRSTREAM_SCRUB_*), the same in the gateway, the SDK and the worker."""
        return cls(ScrubConfig(
            hash_ip_addresses=settings.scrub_ip_addresses,
            hash_user_ids=settings.scrub_user_ids,
            hash_key=settings.scrub_hash_key.get_secret_value(),
            sensitive_keys=DEFAULT_SENSITIVE_KEYS + tuple(settings.scrub_sensitive_keys),
        ))
