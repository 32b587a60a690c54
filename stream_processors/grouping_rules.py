"""Server-side grouping rules: steer grouping without redeploying any app (Sentry's fingerprint and stack rules).

A rules file holds one rule a line (``#`` starts a comment)::

    error.type:ConnectionError -> database-unavailable
    service:billing message:"*timeout*" -> billing-timeouts, {{ default }}
    stack.module:vendor.* -app
    stack.function:retry_* -group

A rule is matchers, then either ``-> fingerprint parts`` (a *fingerprint rule*: the first one that matches
an event decides its fingerprint) or frame actions (a *stack rule*: ``+app``/``-app`` mark matching frames
in-app or not, ``+group``/``-group`` keep them in or out of the grouping key; later rules win).

Matchers are ``key:pattern`` (``!key:pattern`` negates), patterns are case-insensitive globs (``*``, ``?``,
``[…]``), quoted with ``"…"`` when they hold spaces. Event keys: ``error.type`` and ``error.value`` (any
exception of the chain), ``message`` (the message or any exception value), ``service``, ``environment``,
``release``, ``level``, ``logger``, ``tags.NAME``. Frame keys: ``stack.module``, ``stack.function``,
``stack.abs_path`` (alias ``stack.path``); in a fingerprint rule a frame key matches when any frame does.
Fingerprint parts may use ``{{ default }}`` (errstream's own grouping), ``{{ error.type }}``,
``{{ error.value }}``, ``{{ message }}``, ``{{ service }}``, ``{{ logger }}`` and ``{{ level }}``.

A rule set is a pure value: its ``version`` is a digest of its text, so every worker that applies the same
version computes the same fingerprints, and replays reproduce them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

EVENT_KEYS = {"error.type", "error.value", "message", "service", "environment", "release", "level", "logger"}
FRAME_KEYS = {"stack.module": "module", "stack.function": "function", "stack.abs_path": "abs_path",
              "stack.path": "abs_path"}
VARIABLES = {"default", "error.type", "error.value", "message", "service", "logger", "level"}
MAX_RULES = 1_000
MAX_LINE = 2_000

_TOKEN = re.compile(r'\s*(?:(!?[\w.\-]+):(?:"((?:[^"\\]|\\.)*)"|([^\s"]\S*))|([+-](?:app|group))(?=\s|$))')
_VARIABLE = re.compile(r"^\{\{\s*([\w.]+)\s*\}\}$")


class RulesError(ValueError):
    """A rules file that cannot be used, with every problem as ``line N: reason``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Matcher:
    key: str
    pattern: str
    negated: bool = False

    def describe(self) -> str:
        return f"{'!' if self.negated else ''}{self.key}:{self.pattern}"


@dataclass(frozen=True, slots=True)
class Rule:
    line: int
    text: str
    matchers: tuple[Matcher, ...]
    fingerprint: tuple[str, ...] = ()  # a fingerprint rule
    actions: tuple[str, ...] = ()      # a stack rule

    @property
    def frame_matchers(self) -> tuple[Matcher, ...]:
        return tuple(m for m in self.matchers if m.key in FRAME_KEYS)

    @property
    def event_matchers(self) -> tuple[Matcher, ...]:
        return tuple(m for m in self.matchers if m.key not in FRAME_KEYS)


@dataclass(frozen=True)
class GroupingRules:
    text: str
    fingerprint_rules: tuple[Rule, ...] = ()
    stack_rules: tuple[Rule, ...] = ()
    version: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", rules_version(self.text))

    @property
    def empty(self) -> bool:
        return not self.fingerprint_rules and not self.stack_rules


def rules_version(text: str) -> str:
    """12 hex characters of the text's digest: the same rules are the same version everywhere."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=6).hexdigest()


def parse_rules(text: str) -> GroupingRules:
    """The rules in ``text``; raises ``RulesError`` listing every bad line (not only the first)."""
    problems: list[str] = []
    fingerprint_rules: list[Rule] = []
    stack_rules: list[Rule] = []
    lines = text.splitlines()
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip() if not _quoted_hash(raw) else raw.strip()
        if not line:
            continue
        if len(line) > MAX_LINE:
            problems.append(f"line {number}: longer than {MAX_LINE} characters")
            continue
        try:
            rule = _parse_line(number, line)
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
            continue
        (fingerprint_rules if rule.fingerprint else stack_rules).append(rule)
    if len(fingerprint_rules) + len(stack_rules) > MAX_RULES:
        problems.append(f"more than {MAX_RULES} rules")
    if problems:
        raise RulesError(problems)
    return GroupingRules(text, tuple(fingerprint_rules), tuple(stack_rules))


def _quoted_hash(line: str) -> bool:
    """A ``#`` inside a quoted pattern is part of the pattern, not a comment."""
    hash_at = line.find("#")
    return hash_at > 0 and line[:hash_at].count('"') % 2 == 1


def _parse_line(number: int, line: str) -> Rule:
    head, arrow, tail = line.partition("->")
    matchers: list[Matcher] = []
    actions: list[str] = []
    pos = 0
    head = head.rstrip()
    while pos < len(head):
        m = _TOKEN.match(head, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read {head[pos:].strip()[:40]!r}: expected key:pattern or +app/-app/+group/-group")
        key, quoted, bare, action = m.groups()
        pos = m.end()
        if action:
            actions.append(action)
            continue
        negated = key.startswith("!")
        key = key.lstrip("!")
        if key not in EVENT_KEYS and key not in FRAME_KEYS and not (key.startswith("tags.") and len(key) > 5):
            raise ValueError(f"unknown matcher {key!r}; use one of "
                             f"{', '.join(sorted(EVENT_KEYS | set(FRAME_KEYS)))} or tags.NAME")
        pattern = quoted.replace('\\"', '"') if quoted is not None else bare
        if not pattern:
            raise ValueError(f"empty pattern for {key}")
        matchers.append(Matcher(key, pattern, negated))
    if not matchers:
        raise ValueError("a rule needs at least one matcher")
    if arrow:
        if actions:
            raise ValueError("a rule sets either a fingerprint (->) or frame actions, not both")
        parts = tuple(p.strip() for p in tail.split(","))
        if not parts or any(not p for p in parts):
            raise ValueError("empty fingerprint part after ->")
        for part in parts:
            var = _VARIABLE.match(part)
            if var and var.group(1) not in VARIABLES:
                raise ValueError(f"unknown variable {part}; use one of {', '.join(sorted(VARIABLES))}")
        return Rule(number, line, tuple(matchers), fingerprint=parts)
    if not actions:
        raise ValueError("expected '-> fingerprint' or a frame action (+app, -app, +group, -group)")
    frame_matchers = [m for m in matchers if m.key in FRAME_KEYS]
    if not frame_matchers:
        raise ValueError("frame actions need a stack.* matcher (which frames to change)")
    return Rule(number, line, tuple(matchers), actions=tuple(actions))


# --- matching --------------------------------------------------------------------------------------------
@lru_cache(maxsize=65_536)
def _glob(pattern: str, value: str) -> bool:
    return fnmatchcase(value.lower(), pattern.lower())


def _event_values(event: Any, key: str) -> Sequence[str]:
    if key == "error.type":
        return [e.type for e in event.exceptions]
    if key == "error.value":
        return [e.value for e in event.exceptions]
    if key == "message":
        return [event.message or "", *(e.value for e in event.exceptions)]
    if key.startswith("tags."):
        value = (event.tags or {}).get(key[5:])
        return [] if value is None else [str(value)]
    value = getattr(event, key, None)
    return [] if value is None else [str(value)]


def _frame_value(frame: Any, key: str) -> str:
    attr = FRAME_KEYS[key]
    if attr == "abs_path":
        return frame.abs_path or frame.filename or ""
    return getattr(frame, attr, None) or ""


def _matches(matcher: Matcher, values: Sequence[str]) -> bool:
    hit = any(_glob(matcher.pattern, v) for v in values)
    return hit != matcher.negated


def event_matches(rule: Rule, event: Any) -> bool:
    """All event matchers hold, and every frame matcher holds for some frame."""
    for m in rule.event_matchers:
        if not _matches(m, _event_values(event, m.key)):
            return False
    frame_matchers = rule.frame_matchers
    if frame_matchers:
        frames = [f for e in event.exceptions for f in e.stacktrace]
        if not any(frame_matches(rule, f) for f in frames):
            return False
    return True


def frame_matches(rule: Rule, frame: Any) -> bool:
    return all(_matches(m, [_frame_value(frame, m.key)]) for m in rule.frame_matchers)


@dataclass
class FrameFlags:
    """What the stack rules decided for one frame (None: as the SDK sent it / grouped as usual)."""

    in_app: bool
    group: bool = True
    rules: list[int] = field(default_factory=list)


def frame_flags(rules: GroupingRules | None, event: Any, frame: Any, in_app: bool | None = None,
                group: bool = True) -> FrameFlags:
    """The stack rules' verdict on ``frame``, starting from ``in_app`` (default: the SDK's) and ``group``."""
    flags = FrameFlags(in_app=bool(frame.in_app) if in_app is None else in_app, group=group)
    if rules is None or not rules.stack_rules:
        return flags
    for rule in rules.stack_rules:
        if not frame_matches(rule, frame) or not all(
                _matches(m, _event_values(event, m.key)) for m in rule.event_matchers):
            continue
        flags.rules.append(rule.line)
        for action in rule.actions:
            if action in ("+app", "-app"):
                flags.in_app = action == "+app"
            else:
                flags.group = action == "+group"
    return flags


def first_fingerprint_rule(rules: GroupingRules | None, event: Any) -> Rule | None:
    if rules is None:
        return None
    return next((r for r in rules.fingerprint_rules if event_matches(r, event)), None)


def resolve_parts(rule: Rule, event: Any, default: str) -> list[str]:
    out: list[str] = []
    for part in rule.fingerprint:
        var = _VARIABLE.match(part)
        if var is None:
            out.append(part)
            continue
        name = var.group(1)
        if name == "default":
            out.append(default)
        elif name in ("error.type", "error.value"):
            values = _event_values(event, name)
            out.append(values[-1] if values else "")  # the outermost exception, as Sentry's variables
        else:
            out.append(str(getattr(event, name, "") or ""))
    return out
