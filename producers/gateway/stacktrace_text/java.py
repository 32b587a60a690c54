"""Java's printed stack trace (``Throwable.printStackTrace``), with ``Caused by:`` chains and ``... N more``.

Java prints the outermost exception first and each trace innermost frame first; Sentry (and our schema)
want the root cause first and frames outermost first, so both are reversed. ``... N more`` says the last N
frames equal those of the enclosing trace: they are copied from it, as the Sentry Java SDK sends the full
stack of every cause. Types are split as the Sentry Java SDK splits them (``IOException`` in module
``java.io``), frames carry the class as module and the method as function.
"""

from __future__ import annotations

import re
from typing import Any

from producers.gateway.stacktrace_text.common import bounded_chain, exception, frame, split_type

# "at [loader//][module@version/]pkg.Class.method(Source.java:12)"; no nested quantifiers, so a hostile line of
# 64,000 characters costs one linear scan (tests/unit/test_stacktrace_text.py times the worst shapes).
_FRAME = re.compile(r"^\s+at (?P<target>[^\s(]+)\((?P<src>[^)]*)\)")
_MORE = re.compile(r"^\s+\.\.\. (?P<n>\d+) (?:more|common frames omitted)")
_HEAD = re.compile(r"^(?:Caused by: )?(?P<type>[A-Za-z_$][\w$]*(?:\.[\w$]+)+|[A-Z][\w$]*(?:Exception|Error))"
                   r"(?::(?P<value>.*))?$")
# Frames from the JVM and common frameworks: not in-app, as the Sentry Java SDK's default excludes them.
_FRAMEWORK = ("java.", "javax.", "jdk.", "sun.", "com.sun.", "kotlin.", "kotlinx.", "scala.", "org.springframework.",
              "org.apache.", "org.eclipse.jetty.", "io.netty.", "org.junit.", "io.opentelemetry.")


def _frame(target: str, src: str) -> dict[str, Any] | None:
    cls, _, meth = target.rsplit("/", 1)[-1].rpartition(".")
    if not cls or not meth:
        return None
    filename, _, line = src.partition(":")
    lineno = int(line[:10]) if line.isdigit() else None
    if filename in ("Native Method", "Unknown Source"):
        filename = ""
    return frame(module=cls, function=meth, filename=filename or None, lineno=lineno,
                 in_app=not cls.startswith(_FRAMEWORK))


def parse(text: str, root: str | None) -> list[dict[str, Any]] | None:
    lines = text.splitlines()
    if not any(_FRAME.match(ln) for ln in lines[:200]):
        return None
    outer_first: list[tuple[str, str, list[dict[str, Any]]]] = []  # (type, value, frames innermost first)
    in_suppressed = False
    for line in lines:
        head = _HEAD.match(line) if not line[:1].isspace() else None
        if head and (not outer_first or line.startswith("Caused by: ")):
            outer_first.append((head["type"], (head["value"] or "").strip(), []))
            in_suppressed = False
            continue
        if not outer_first:
            continue
        if line.lstrip().startswith("Suppressed: "):  # a suppressed exception's own trace: not this chain
            in_suppressed = True
            continue
        if in_suppressed:
            continue
        match = _FRAME.match(line)
        if match:
            parsed = _frame(match["target"], match["src"])
            if parsed is not None:
                outer_first[-1][2].append(parsed)
            continue
        more = _MORE.match(line)
        if more and len(outer_first) >= 2:
            enclosing = outer_first[-2][2]
            n = min(int(more["n"][:6]), len(enclosing))
            if n:
                outer_first[-1][2].extend(enclosing[-n:])
    if not outer_first:
        return None
    chain = []
    for type_, value, frames in reversed(outer_first):  # root cause first
        name, module = split_type(type_)
        chain.append(exception(name, value, frames[::-1], module))
    return bounded_chain(chain)
