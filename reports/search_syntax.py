"""The issue stream's search syntax: ``is:unresolved level:error release:1.4.2 service:billing assigned:me text``.

What a Sentry user types into the search box, parsed into the stream's filter fields (a dict of
``reports.issue_queries.models.IssueFilter`` fields) and the free text that remains. Pure and small, so the web
page, the API (``query=``) and the command line read a query the same way.

* ``key:value`` only for the keys below; anything else (``KeyError: 'x'``, ``http://host``) is text, so a
  pasted error message searches as itself. Values may be quoted: ``release:"1.4 beta"``.
* ``is:`` may repeat and adds statuses (``is:resolved is:ignored``); ``is:unresolved`` (= ``is:open``) is
  the open ones (``escalating`` among them); ``is:archived`` = ``is:ignored``; ``is:unassigned`` = ``assigned:none``. Other keys given twice: the last one counts.
* Quoted phrases and words left over are the text, matched in title, culprit, fingerprint and recent
  messages; it is cut to ``MAX_TEXT`` characters (the caller says so to the user).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_QUERY = 2_000  # a whole query; longer ones are refused with a reason (a URL cap of 8 KB stops the rest)
MAX_TEXT = 200  # the free text searched (as the API's q)
LEVELS = ("debug", "info", "warning", "error", "critical")
STATUS_WORDS = {"unresolved": "open", "open": "open", "new": "new", "acknowledged": "acknowledged",
                "investigating": "investigating", "resolved": "resolved", "ignored": "ignored",
                "archived": "ignored", "regressed": "regressed", "escalating": "escalating"}
KEYS = {"is": "is", "level": "level", "service": "service", "env": "environment", "environment": "environment",
        "release": "release", "assigned": "assignee", "assignee": "assignee"}
_TOKEN = re.compile(r'(?P<key>[A-Za-z]+):(?:"(?P<qval>[^"]*)"|(?P<val>\S+))|"(?P<phrase>[^"]*)"|(?P<word>\S+)')


class SearchError(ValueError):
    """A query that cannot mean anything (an unknown status or level, an empty value): the caller's 400."""


@dataclass
class ParsedSearch:
    fields: dict[str, Any] = field(default_factory=dict)  # service, environment, release, level, assignee, status
    text: str = ""
    text_cut: bool = False  # the text was longer than MAX_TEXT and was cut

    @property
    def status(self) -> list[str] | None:
        return self.fields.get("status")


def parse(query: str, me: str | None = None) -> ParsedSearch:
    """Parse ``query``; ``me`` is who asks (for ``assigned:me``)."""
    if len(query) > MAX_QUERY:
        raise SearchError(f"the search is {len(query)} characters long; at most {MAX_QUERY}")
    out = ParsedSearch()
    words: list[str] = []
    for m in _TOKEN.finditer(query):
        key = (m.group("key") or "").lower()
        if key and key in KEYS:
            value = m.group("qval") if m.group("qval") is not None else m.group("val")
            _apply(out, KEYS[key], key, value.strip(), me)
        elif m.group("phrase") is not None:
            words.append(m.group("phrase"))
        else:
            words.append(m.group(0))
    text = " ".join(w for w in words if w).strip()
    if len(text) > MAX_TEXT:
        text, out.text_cut = text[:MAX_TEXT].rstrip(), True
    out.text = text
    return out


def _apply(out: ParsedSearch, name: str, key: str, value: str, me: str | None) -> None:
    if not value:
        raise SearchError(f"{key}: needs a value")
    if name == "is":
        word = value.lower()
        if word == "unassigned":
            out.fields["assignee"] = "none"
            return
        if word not in STATUS_WORDS:
            raise SearchError(f"is:{value} is not a status; use one of {', '.join(['unassigned', *STATUS_WORDS])}")
        status = out.fields.setdefault("status", [])
        if STATUS_WORDS[word] not in status:
            status.append(STATUS_WORDS[word])
    elif name == "level":
        if value.lower() not in LEVELS:
            raise SearchError(f"level:{value} is not a level; use one of {', '.join(LEVELS)}")
        out.fields["level"] = value.lower()
    elif name == "assignee":
        if value.lower() == "me":
            if not me:
                raise SearchError("assigned:me needs to know who you are")
            value = me
        out.fields["assignee"] = "none" if value.lower() in ("none", "nobody") else value
    else:
        out.fields[name] = value
