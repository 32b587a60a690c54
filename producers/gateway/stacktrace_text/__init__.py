"""Stack traces from text: a language's own printed trace → our exception chain with frames.

OpenTelemetry carries a stack only as ``exception.stacktrace``, the text the language prints
(``traceback.format_exception``, ``Throwable.printStackTrace``, ``err.stack``, a Go panic or
``debug.Stack()``, ``Exception.ToString()``). Grouping works on frames, so each language's text is parsed
back into ``StackFrame`` fields, in the Sentry path's conventions (``schemas/events.py``): frames from the
outermost call to the raising frame, the chain root cause first, and type/module split as the Sentry SDK
of that language splits them, so the same bug sent through an SDK and through OpenTelemetry has the same
fingerprint (``stream_processors/fingerprint.py``).

One module per language, each with ``parse(text, root) -> list[dict] | None`` (``None``: not that
language's shape). ``parse_stacktrace`` picks the parser from ``telemetry.sdk.language`` when the resource
names it, else tries each in turn. Text is cut to ``MAX_TEXT`` before parsing, and every parser is linear in
its input, so a hostile trace costs bounded time.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import msgspec
from msgspec.structs import replace

from producers.gateway.stacktrace_text import dotnet, golang, java, javascript, python
from schemas.fast import ExceptionInfo

Parsed = list[dict[str, Any]]
Parser = Callable[[str, str | None], Parsed | None]
MAX_TEXT = 64_000  # characters of one exception.stacktrace that are parsed; a longer one is cut
# The same bug sends the same text again and again: parsed once, its frames are reused (``parse_chain``). Only
# texts up to CACHED_TEXT characters are kept, so the cache holds at most CACHE_SIZE * CACHED_TEXT characters
# (16 MB).
CACHE_SIZE = 1_024
CACHED_TEXT = 16_000

BY_LANGUAGE: dict[str, Parser] = {
    "python": python.parse,
    "java": java.parse,
    "nodejs": javascript.parse,
    "webjs": javascript.parse,
    "javascript": javascript.parse,
    "go": golang.parse,
    "dotnet": dotnet.parse,
}
# Tried in this order when the language is unknown: the most distinctive shapes first.
ALL: tuple[Parser, ...] = (python.parse, golang.parse, dotnet.parse, java.parse, javascript.parse)


def parse_stacktrace(text: str, language: str | None = None, root: str | None = None) -> Parsed | None:
    """The exception chain (root cause first) with frames, or None when no parser recognises the text.

    ``root`` is the application's source root (resource attribute ``errstream.project_root``): frames
    under it are in-app and, for Python, get their dotted module name from the path below it, as the Sentry
    Python SDK derives both from its ``project_root``. Parsed afresh on every call; the gateway reads
    ``parse_chain``, which keeps each text's result.
    """
    if not text or not text.strip():
        return None
    return _parse(text[:MAX_TEXT], language, root)


def parse_chain(text: str, language: str | None = None, root: str | None = None) -> tuple[ExceptionInfo, ...] | None:
    """``parse_stacktrace``'s chain as schema structs, validated once per distinct text and then reused.

    The same bug sends the same text again and again, so each text of up to ``CACHED_TEXT`` characters is
    parsed and validated once. The structs returned are shared with the cache and must not be changed:
    ``copy_chain`` gives an event its own copies.
    """
    if not text or text.isspace():
        return None
    text = text[:MAX_TEXT]
    return _cached(text, language, root) if len(text) <= CACHED_TEXT else _validated(text, language, root)


@lru_cache(maxsize=CACHE_SIZE)
def _cached(text: str, language: str | None, root: str | None) -> tuple[ExceptionInfo, ...] | None:
    return _validated(text, language, root)


def _validated(text: str, language: str | None, root: str | None) -> tuple[ExceptionInfo, ...] | None:
    chain = _parse(text, language, root)
    if not chain:
        return None
    try:  # the parsers bound every field; a chain the schema still refuses counts as unparsed
        return tuple(msgspec.convert(exc, ExceptionInfo) for exc in chain)
    except msgspec.ValidationError:
        return None


def copy_chain(chain: tuple[ExceptionInfo, ...] | list[ExceptionInfo]) -> list[ExceptionInfo]:
    """An event's own copy of a cached chain: the scrubber changes values and source lines in place."""
    return [replace(exc, stacktrace=[replace(f) for f in exc.stacktrace]) for exc in chain]


def _parse(text: str, language: str | None, root: str | None) -> Parsed | None:
    first = BY_LANGUAGE.get((language or "").lower())
    for parser in ((first,) if first else ()) + ALL:
        chain = parser(text, root)
        if chain:
            return chain
    return None
