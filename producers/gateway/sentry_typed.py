"""The fast conversion of a Sentry event payload: decoded straight into typed structs, not into dicts.

Parsed into dicts, a Sentry event's frames and breadcrumbs are most of the objects
built per event; msgspec decodes everything errstream does not keep straight past,
and decodes frames and breadcrumbs directly into the schema mirror
(``schemas.fast``), validating them on the way (instruction counts:
docs/performance.md, "Why the hot path is built this way"). A frame's
``pre_context``, ``post_context`` and ``vars`` (locals) are kept when the SDK sent
them, within the schema's bounds; beyond them the lenient conversion trims.

This is an optimisation, never a second set of rules: whenever the typed decode
or the schema refuses something, the payload goes through
``sentry.convert_sentry_event`` (the lenient conversion, which trims and
repairs what it can and explains what it cannot), so both paths give the same
event or the same refusal. ``tests/unit/test_gateway_sentry_typed.py`` checks that on
real SDK payloads and thousands of mutations of them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import msgspec

from producers.gateway.sentry import (
    common_fields,
    convert_sentry_event,
    loads_or_reject,
    with_sentry_fingerprint,
)
from schemas.fast import Breadcrumb, ErrorEvent, Mechanism, StackFrame
from schemas.limits import MAX_BREADCRUMBS, MAX_CHAIN


class _Stacktrace(msgspec.Struct, gc=False):
    frames: list[StackFrame] | None = None


class _Exception(msgspec.Struct, gc=False):
    type: Any = None
    value: Any = None
    module: Any = None
    mechanism: Mechanism | None = None
    stacktrace: _Stacktrace | None = None


class _Exceptions(msgspec.Struct, gc=False):
    values: list[_Exception] | None = None


class _Breadcrumbs(msgspec.Struct, gc=False):
    values: list[Breadcrumb] | None = None


class SentryEvent(msgspec.Struct, gc=False):
    """The parts of a Sentry event errstream keeps; everything else in the payload is skipped unparsed."""

    event_id: Any = None
    timestamp: Any = None
    level: Any = None
    platform: Any = None
    environment: Any = None
    release: Any = None
    server_name: Any = None
    logger: Any = None
    message: Any = None
    logentry: Any = None
    exception: _Exceptions | list[_Exception] | None = None
    breadcrumbs: _Breadcrumbs | list[Breadcrumb] | None = None
    tags: Any = None
    contexts: Any = None
    extra: Any = None
    user: Any = None
    request: Any = None
    sdk: Any = None
    fingerprint: Any = None


_DECODER = msgspec.json.Decoder(SentryEvent)


def convert_sentry_payload(payload: bytes, *, service: str, client_ip: str | None = None,
                           what: str = "event item") -> ErrorEvent:
    """Our event from the JSON of a Sentry event; raises ``Rejected`` (400) exactly as the lenient path does."""
    event = typed_event(payload, service=service, client_ip=client_ip)
    if event is None:
        return convert_sentry_event(loads_or_reject(payload, what), service=service, client_ip=client_ip)
    return event


def typed_event(payload: bytes, *, service: str, client_ip: str | None = None) -> ErrorEvent | None:
    """The event when the payload decodes into the typed structs and satisfies the schema as it is, else None."""
    try:
        typed = _DECODER.decode(payload)
        event = msgspec.convert(_fields(typed, service, client_ip), ErrorEvent)
    except (msgspec.DecodeError, ValueError, TypeError):  # msgspec.ValidationError is a DecodeError
        return None
    return with_sentry_fingerprint(event, typed.fingerprint)


def _fields(typed: SentryEvent, service: str, client_ip: str | None) -> dict[str, Any]:
    fields = common_fields(partial(getattr, typed), service, client_ip)  # a C-level getter: called 15 times
    if typed.event_id is not None:  # else the schema's default: a new id, as the lenient path gives
        fields["event_id"] = typed.event_id
    chain = typed.exception
    chain = (chain.values or []) if isinstance(chain, _Exceptions) else (chain or [])
    fields["exceptions"] = [
        {"type": e.type, "value": e.value or "", "module": e.module, "mechanism": e.mechanism,
         "stacktrace": (e.stacktrace.frames or []) if e.stacktrace is not None else []}
        for e in chain[-MAX_CHAIN:]
    ]
    crumbs = typed.breadcrumbs
    crumbs = (crumbs.values or []) if isinstance(crumbs, _Breadcrumbs) else (crumbs or [])
    fields["breadcrumbs"] = crumbs[-MAX_BREADCRUMBS:]
    return fields
