"""JavaScript's ``err.stack`` (V8: Node.js, Chrome; and the ``func@file:line:col`` shape of Firefox/Safari).

V8 prints ``Type: message`` and then frames innermost first (``    at fn (file:line:col)``); they are
reversed to outermost first. Frames inside ``node_modules`` or Node's own ``node:`` modules are not
in-app, the others are, as the Sentry JavaScript SDKs decide.
"""

from __future__ import annotations

import re
from typing import Any

from producers.gateway.stacktrace_text.common import exception, frame, under_root

_V8 = re.compile(r"^\s+at (?P<rest>.+)$")
_GECKO = re.compile(r"^(?P<func>[^@\s]*)@(?P<loc>.+)$")
_LOC = re.compile(r"^(?P<file>.+?):(?P<line>\d+)(?::(?P<col>\d+))?$")
_HEAD = re.compile(r"^(?P<type>[A-Za-z_$][\w$.]*)(?::(?P<value>.*))?$")
_SUFFIX = re.compile(r"\.(?:[cm]?js|[cm]?ts|jsx|tsx)$")


def _frame(func: str | None, loc: str, root: str | None) -> dict[str, Any] | None:
    where = _LOC.match(loc)
    if where is None:  # "native", "<anonymous>", "index 0" of Promise.all
        return None
    path = where["file"].removeprefix("file://")
    internal = path.startswith(("node:", "internal/")) or "/node_modules/" in path
    relative = under_root(path, root)
    module = _SUFFIX.sub("", relative) if relative is not None else None
    return frame(filename=path, abs_path=path, module=module, function=func or None,
                 lineno=int(where["line"][:10]), colno=int(where["col"][:10]) if where["col"] else None,
                 in_app=not internal)


def _v8(rest: str) -> tuple[str | None, str]:
    """``fn (loc)`` or a bare ``loc``; split with ``rfind``, not a regular expression, so it stays linear."""
    rest = rest.strip().removeprefix("async ").removeprefix("new ")
    if rest.endswith(")"):
        cut_at = rest.rfind(" (")
        if cut_at > 0:
            return rest[:cut_at], rest[cut_at + 2:-1]
    return None, rest


def parse(text: str, root: str | None) -> list[dict[str, Any]] | None:
    lines = text.splitlines()
    head = _HEAD.match(lines[0].strip()) if lines else None
    frames: list[dict[str, Any]] = []
    message_lines: list[str] = []
    seen_frame = False
    for line in lines[1:]:
        v8 = _V8.match(line)
        gecko = _GECKO.match(line.strip()) if not v8 else None
        if v8:
            seen_frame = True
            f = _frame(*_v8(v8["rest"]), root)
        elif gecko and ":" in gecko["loc"]:
            seen_frame = True
            f = _frame(gecko["func"], gecko["loc"], root)
        else:
            if not seen_frame:  # a message over several lines
                message_lines.append(line)
            continue
        if f is not None:
            frames.append(f)
    if head is None or not seen_frame:
        return None
    value = "\n".join([(head["value"] or "").strip(), *message_lines]).strip()
    return [exception(head["type"], value, frames[::-1])]
