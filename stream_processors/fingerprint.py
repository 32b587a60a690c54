"""Grouping key, title and culprit of an event.

One issue per real bug, stable across releases:

* With a stack: for every exception of the chain, root cause first, its type
  and the module + function of its in-app frames — never line numbers,
  absolute paths or memory addresses, which change with every deploy. When no
  frame is in-app (a bug surfacing inside a library), all frames are used.
  Recursion collapses: ``f f f f`` and ``f f`` are one frame, ``a b a b a b``
  is ``a b``, so the depth a recursion reached does not split a group.
* Without a usable stack: logger + the *parameterised* message (not the level), so
  ``timeout after 3012 ms`` and ``timeout after 2987 ms`` group together, and
  the key is the same before and after scrubbing (see ``sensitive.py``).
* An explicit ``fingerprint`` on the event wins; ``{{ default }}`` in it
  expands to the computed key, as in Sentry.

The digest is BLAKE2b over explicit, separated components (never ``hash()``,
which is salted per process), so every worker agrees forever.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from schemas.fast import AnyErrorEvent as ErrorEvent
from schemas.fast import AnyExceptionInfo as ExceptionInfo
from schemas.fast import AnyStackFrame as StackFrame
from stream_processors.grouping_platforms import (
    FrameVerdict,
    canonical_recursion,
    file_module,
    minified_frames,
    verdict,
)
from stream_processors.grouping_rules import GroupingRules, first_fingerprint_rule, frame_flags, resolve_parts
from stream_processors.normalize import grouping_message_key, message_key

# The grouping version new issues get. Version 1: Python-shaped frames, no service in the key. Version 2:
# per-platform frame rules (grouping_platforms/), canonical recursion, the source line of frames without a
# meaningful name, the message of exceptions without a meaningful in-app frame, and the service.
# Changing the key is a new version: see docs/grouping.md#grouping-versions-and-upgrades.
GROUPING_VERSION = 2
PREVIOUS_GROUPING_VERSION = 1
GROUPING_VERSIONS = (1, 2)
MAX_TITLE = 400
MAX_RECURSION_PERIOD = 4  # cycles of up to 4 frames (a → b → c → d → a …) collapse
_SEP = "\x1f"
CHAIN_LINK_END = _SEP  # closes each exception's part of the key: [A, f] + [B] never equals [A] + [f, B]
_DEFAULT_PLACEHOLDER = re.compile(r"^\{\{\s*default\s*\}\}$")
# things in frame names that differ per process or deploy
_ADDRESS = re.compile(r"\s*(?:at )?0x[0-9a-fA-F]+")
_JVM_LAMBDA = re.compile(r"\$\$Lambda\$\d+/\S*")
_SOURCE_SUFFIX = re.compile(r"\.(?:py[cwo]?|js|mjs|ts|rb|java|kt|go)$")


@dataclass(frozen=True, slots=True)
class Grouping:
    fingerprint: str
    title: str
    culprit: str
    exception_type: str
    rules_version: str = ""  # the server-side grouping rules it was computed with ("" for none)
    version: int = GROUPING_VERSION  # the grouping version that computed ``fingerprint``


def digest(parts: Sequence[str]) -> str:
    return hashlib.blake2b(_SEP.join(parts).encode("utf-8"), digest_size=16).hexdigest()


def _clean_name(name: str) -> str:
    if "0x" in name:
        name = _ADDRESS.sub("", name)
    if "$$Lambda$" in name:
        name = _JVM_LAMBDA.sub("$$Lambda", name)
    return name


def _module_from_path(path: str) -> str:
    """A deploy-independent stand-in for a module: the part after site-packages, else the file name."""
    return file_module(path.replace("\\", "/"), _SOURCE_SUFFIX)


def frame_module(frame: StackFrame) -> str:
    return _module_name(frame.module, frame.filename or frame.abs_path)


def frame_key(frame: StackFrame) -> str:
    return _frame_key(frame.module, frame.function, frame.filename or frame.abs_path)


@lru_cache(maxsize=16_384)
def _module_name(module: str | None, path: str | None) -> str:
    if module:
        return _clean_name(module)
    return _module_from_path(path) if path else "?"


@lru_cache(maxsize=65_536)
def _frame_key(module: str | None, function: str | None, path: str | None) -> str:
    """Memoised: the same frames recur in every event of a group, and there are 20+ per event."""
    return f"{_module_name(module, path)}.{_clean_name(function) if function else '?'}"


def collapse_recursion(keys: list[str], max_period: int = MAX_RECURSION_PERIOD) -> list[str]:
    """Drop a block of frames whenever it repeats the block just before it (periods 1..max_period)."""
    if len(set(keys)) == len(keys):
        return keys  # no frame repeats: no recursion (the common case)
    out: list[str] = []
    for key in keys:
        out.append(key)
        for period in range(1, max_period + 1):
            # cheap test first: a repeated block ends with the same frame `period` places back
            while (len(out) >= 2 * period and out[-1] == out[-1 - period]
                   and out[-period:] == out[-2 * period:-period]):
                del out[-period:]
    return out


def _usable(frames: Sequence[StackFrame]) -> bool:
    return any(f.function or f.module or f.filename or f.abs_path for f in frames)


def _grouping_frames(exc: ExceptionInfo, event: ErrorEvent | None = None, rules: GroupingRules | None = None,
                     trace: list[str] | None = None) -> Sequence[StackFrame]:
    """The frames that group: the in-app ones (all, when none is), less those a stack rule takes out."""
    if rules is None or not rules.stack_rules:
        in_app = [f for f in exc.stacktrace if f.in_app]
        return in_app or exc.stacktrace
    stack: Sequence[StackFrame] = exc.stacktrace
    flags = [frame_flags(rules, event, f) for f in stack]
    if trace is not None:
        for f, fl in zip(stack, flags, strict=True):
            if fl.rules:
                trace.append(f"  stack rules at line(s) {', '.join(map(str, fl.rules))} made "
                             f"{frame_key(f)} {'in-app' if fl.in_app else 'not in-app'}"
                             f"{'' if fl.group else ', out of the key'}")
    in_app = [f for f, fl in zip(stack, flags, strict=True) if fl.in_app and fl.group]
    return in_app or [f for f, fl in zip(stack, flags, strict=True) if fl.group]


def _first_line(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    return line[:MAX_TITLE]


def _frameless(event: ErrorEvent, title: str, key: Callable[[str], str],
               trace: list[str] | None) -> tuple[list[str], str, str, str]:
    """No frame anywhere in the chain: its types and the root cause's parameterised value."""
    root = event.exceptions[0]
    parts = ["exception-nostack", *(e.type for e in event.exceptions), key(root.value)]
    if trace is not None:
        trace.append(f"no usable stack: chain types {[e.type for e in event.exceptions]} "
                     f"+ the root cause's parameterised value {key(root.value)!r}")
    return parts, title, event.logger or "", root.type


def _exception_grouping(event: ErrorEvent, rules: GroupingRules | None = None,
                        trace: list[str] | None = None) -> tuple[list[str], str, str, str]:
    """The whole chain groups: each exception's type and in-app frames, root cause first.

    Two different outer failures over one root cause (a checkout and a refund handler wrapping the same
    storage timeout) are two issues, as in Sentry; the title and culprit stay the root cause's, which
    reads best and is stable per issue.
    """
    root = event.exceptions[0]  # root cause first (schemas.events)
    # a root cause created but never raised has no frames: take the nearest exception that has a stack
    with_stack = next((e for e in event.exceptions if _usable(e.stacktrace)), None)
    title = f"{root.type}: {_first_line(root.value)}" if root.value.strip() else root.type
    if with_stack is None:
        return _frameless(event, title, message_key, trace)
    parts = ["exception"]
    culprit_frames: Sequence[StackFrame] = ()
    chain: Sequence[ExceptionInfo] = event.exceptions
    for i, exc in enumerate(chain):
        parts.append(exc.type)
        keys: list[str] = []
        if _usable(exc.stacktrace):
            frames = _grouping_frames(exc, event, rules, trace)
            if exc is with_stack:
                culprit_frames = frames
            keys = collapse_recursion([_frame_key(f.module, f.function, f.filename or f.abs_path) for f in frames])
            parts.extend(keys)
        parts.append(CHAIN_LINK_END)
        if trace is not None:
            trace.append(f"exception {i} ({'root cause' if i == 0 else 'wraps the one before'}): type {exc.type}"
                         f"; frames {keys or '(none)'}")
    culprit_frame = (culprit_frames or with_stack.stacktrace)[-1]
    culprit = f"{frame_module(culprit_frame)} in {_clean_name(culprit_frame.function or '?')}"
    return parts, title, culprit, root.type


def _message_grouping(event: ErrorEvent, trace: list[str] | None = None,
                      key: Callable[[str], str] = message_key) -> tuple[list[str], str, str, str]:
    """Logger + the message's key (``message_key`` for version 1, ``grouping_message_key`` after)."""
    message = event.message or ""
    title = _first_line(message) if message.strip() else "<no message>"
    # not the level: one log statement logged at warning on early retries and at error on the last is one issue
    parts = ["message", event.logger or "", key(message)]
    if trace is not None:
        trace.append(f"message event: logger {event.logger or '(none)'!r}; parameterised message "
                     f"{key(message)!r}")
    return parts, title, event.logger or "", ""


# --- version 2 ---------------------------------------------------------------------------------------
def _v2_frames(exc: ExceptionInfo, event: ErrorEvent, rules: GroupingRules | None,
               trace: list[str] | None) -> tuple[list[FrameVerdict], bool]:
    """The exception's grouping frames under its platform's rules (and the server-side stack rules), and
    whether any frame of its stack is the app's."""
    platform = event.platform
    judged = [verdict(platform, f.module, f.function, f.abs_path or f.filename, f.in_app, f.context_line)
              for f in exc.stacktrace]
    if rules is not None and rules.stack_rules:
        for i, (f, v) in enumerate(zip(exc.stacktrace, judged, strict=True)):
            fl = frame_flags(rules, event, f, v.in_app, v.group)
            if fl.rules:
                judged[i] = v._replace(in_app=fl.in_app, group=fl.group)
                if trace is not None:
                    trace.append(f"  stack rules at line(s) {', '.join(map(str, fl.rules))} made {v.key} "
                                 f"{'in-app' if fl.in_app else 'not in-app'}{'' if fl.group else ', out of the key'}")
    any_app = any(v.in_app for v in judged)
    chosen = [v for v in judged if v.group and v.in_app] if any_app else [v for v in judged if v.group]
    chosen = minified_frames(chosen)
    # Module-level or anonymous code at the start of the stack (a script's ``<module>``, Node's
    # ``Object.<anonymous>``) only says how the code was entered: at import, or later from the event loop
    # after an await. The raising frame keeps it (with its source line).
    start = 0
    while start < len(chosen) - 1 and not chosen[start].named:
        start += 1
    return chosen[start:], any_app


def _exception_grouping_v2(event: ErrorEvent, rules: GroupingRules | None,
                           trace: list[str] | None) -> tuple[list[str], str, str, str]:
    """Version 2: each exception's type and the canonical keys of its grouping frames, root cause first.

    An exception whose stack holds no frame of the app, or only frames whose names say nothing (minified,
    module-level code without a source line), adds its parameterised message: two failures raised in
    shared framework or runtime code look alike by their frames, not by their words.
    """
    root = event.exceptions[0]
    title = f"{root.type}: {_first_line(root.value)}" if root.value.strip() else root.type
    if not any(_usable(e.stacktrace) for e in event.exceptions):
        return _frameless(event, title, grouping_message_key, trace)
    parts = ["exception"]
    culprit = ""
    chain: Sequence[ExceptionInfo] = event.exceptions
    for i, exc in enumerate(chain):
        parts.append(exc.type)
        keys: list[str] = []
        words = ""
        if _usable(exc.stacktrace):
            chosen, any_app = _v2_frames(exc, event, rules, trace)
            keys = canonical_recursion([v.key for v in chosen])
            parts.extend(keys)
            if not any_app or not any(v.meaningful for v in chosen):
                words = grouping_message_key(exc.value)
                parts.append(words)
            if not culprit and chosen:
                culprit = f"{chosen[-1].module} in {chosen[-1].function}"
        parts.append(CHAIN_LINK_END)
        if trace is not None:
            trace.append(f"exception {i} ({'root cause' if i == 0 else 'wraps the one before'}): type {exc.type}"
                         f"; frames {keys or '(none)'}" + (f"; no meaningful app frame: message {words!r}"
                                                           if words else ""))
    return parts, title, culprit, root.type


def group_event(event: ErrorEvent, rules: GroupingRules | None = None, trace: list[str] | None = None,
                version: int = GROUPING_VERSION) -> Grouping:
    """The event's grouping under ``rules`` (server-side rules; None: none) and grouping ``version``.

    ``trace`` collects the why. Version 2 keys every issue within its service: an issue belongs to one
    service, as a Sentry issue to one project (the merge action joins issues across services on purpose).
    """
    if version == 1:
        parts, title, culprit, exception_type = (_exception_grouping(event, rules, trace) if event.exceptions
                                                 else _message_grouping(event, trace))
    elif version == 2:
        parts, title, culprit, exception_type = (_exception_grouping_v2(event, rules, trace) if event.exceptions
                                                 else _message_grouping(event, trace, grouping_message_key))
        parts = ["v2", event.service, *parts]
    else:
        raise ValueError(f"unknown grouping version {version}; known: {GROUPING_VERSIONS}")
    fingerprint = default = digest(parts)
    rule = first_fingerprint_rule(rules, event)
    if rule is not None:
        # a server-side rule wins over the SDK's fingerprint: operators steer grouping without a redeploy
        fingerprint = digest(["rule", *resolve_parts(rule, event, default)])
        if trace is not None:
            trace.append(f"fingerprint rule at line {rule.line} fired: {rule.text}")
    elif event.fingerprint and not all(_DEFAULT_PLACEHOLDER.match(p.strip()) for p in event.fingerprint):
        # A fingerprint of only ``{{ default }}`` is the default grouping (as in Sentry).
        custom = [default if _DEFAULT_PLACEHOLDER.match(p.strip()) else p for p in event.fingerprint]
        fingerprint = digest(["custom", *custom])
        if trace is not None:
            trace.append(f"the SDK's fingerprint {list(event.fingerprint)} replaced the default {default}")
    return Grouping(fingerprint, title[:MAX_TITLE], culprit[:MAX_TITLE], exception_type,
                    rules.version if rules is not None else "", version)
