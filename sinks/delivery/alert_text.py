"""Alert text made safe for every channel before anything formats it.

An alert's title and message come from an event's message, so anyone who can send an event (a browser
key is public) writes them. Before this module a ``\\r`` in a message reached an e-mail ``Subject`` and
``email.message`` raised (``Header values may not contain linefeed``), which stopped ``errstream notify``
on the same record after every restart. So one cleaning step runs first, for every channel:

- control characters (C0 except newline and tab, DEL, C1) are removed; ``\\r\\n``, a lone ``\\r`` and the
  Unicode line and paragraph separators become ``\\n``;
- lone surrogates (JSON allows ``"\\ud800"``; they cannot be encoded as UTF-8) become U+FFFD;
- the bidirectional *override* and *isolate* controls (U+202A–U+202E, U+2066–U+2069) are removed, so a
  subject cannot be made to read backwards; right-to-left text itself is kept;
- one-line fields (subjects, titles, SMS, PagerDuty summaries) have every run of whitespace folded into one
  space and are cut to a length;
- messages are cut at ``MESSAGE_MAX`` characters: a 100 KB message still goes out, cut, with a note.

Channel markup (Slack mrkdwn, Teams markdown, HTML) is escaped by each channel's formatter on top of this.
"""

from __future__ import annotations

import re
from typing import Any

from schemas.alerts import AlertEvent

MESSAGE_MAX = 10_000
TITLE_MAX = 1_000
SERVICE_MAX = 200

_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
_NEWLINES = re.compile("\r\n|[\r\u2028\u2029\x85]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_SPACES = re.compile(r"\s+")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean(text: str, limit: int = MESSAGE_MAX) -> str:
    """Newlines and tabs kept, every other control character removed, encodable as UTF-8, at most ``limit``."""
    text = _NEWLINES.sub("\n", text)
    text = _SURROGATES.sub("\ufffd", _CONTROLS.sub("", text))
    return cut(text, limit)


def one_line(text: str, limit: int = TITLE_MAX) -> str:
    """``clean`` with every run of whitespace (newlines included) folded into one space: safe in a header."""
    return cut(_SPACES.sub(" ", clean(text, len(text) + 1)).strip(), limit)


def _clean_value(value: Any, depth: int = 0) -> Any:
    """Strings in ``details`` cleaned too (they reach generic webhooks and PagerDuty's custom details)."""
    if isinstance(value, str):
        return clean(value)
    if depth > 20:
        return None
    if isinstance(value, dict):
        return {clean(str(k), 200): _clean_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_value(v, depth + 1) for v in value]
    return value


def safe_alert(alert: AlertEvent) -> AlertEvent:
    """The alert with its free text cleaned (same id, kind and severity), which every formatter receives."""
    return alert.model_copy(update={
        "title": one_line(alert.title), "message": clean(alert.message), "service": one_line(alert.service, SERVICE_MAX),
        "owner": one_line(alert.owner, SERVICE_MAX) if alert.owner else alert.owner,
        "dedup_key": one_line(alert.dedup_key, 1_000),
        "fingerprint": one_line(alert.fingerprint, 200) if alert.fingerprint else alert.fingerprint,
        "details": _clean_value(alert.details),
    })
