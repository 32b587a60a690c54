""".NET's ``Exception.ToString()``: the outer exception, `` ---> `` inner ones, then each stack.

The text names the outermost exception first and each inner one after `` ---> ``; the stacks follow
innermost exception first, separated by ``--- End of inner exception stack trace ---``. Frames are
innermost first (``at Ns.Class.Method(args) in file:line N``); both orders are turned round to the Sentry
path's. The type stays the full name, as the Sentry .NET SDK sends it; ``System.*`` and ``Microsoft.*``
frames are not in-app.
"""

from __future__ import annotations

import re
from typing import Any

from producers.gateway.stacktrace_text.common import bounded_chain, exception, frame

_FRAME = re.compile(r"^\s+at (?P<target>[^\s(]+)\.(?P<meth>[^\s.(]+)\((?P<args>[^)]*)\)"
                    r"(?: in (?P<file>.+):line (?P<line>\d+))?\s*$")
_HEAD = re.compile(r"^(?P<type>[A-Za-z_][\w.`+]*(?:Exception|Error|Fault)[\w`]*)(?::(?P<value>.*))?$")
# What tells .NET from Java: its frames' parentheses hold parameters ("()", "(Int32 id)"), Java's a file.
_SIGNAL = re.compile(r"^\s+at [^\s(]+\((?!Native Method\)|Unknown Source\))(?:|[^)]* [^)]*)\)(?: in .+:line \d+)?\s*$")
_INNER_END = "--- End of inner exception stack trace ---"


def parse(text: str, root: str | None) -> list[dict[str, Any]] | None:
    lines = text.splitlines()
    if not any(_SIGNAL.match(ln) or ln.strip() == _INNER_END for ln in lines[:400]):
        return None
    head_lines: list[str] = []
    stacks: list[list[dict[str, Any]]] = [[]]
    for line in lines:
        match = _FRAME.match(line)
        if match:
            target = match["target"].strip()
            stacks[-1].append(frame(module=target, function=match["meth"], filename=match["file"],
                                    abs_path=match["file"], lineno=int(match["line"][:10]) if match["line"] else None,
                                    in_app=not target.startswith(("System.", "Microsoft."))))
        elif line.strip() == _INNER_END:
            stacks.append([])
        elif not stacks[0] and len(stacks) == 1 and not line.strip().startswith("--- "):
            head_lines.append(line)
    heads: list[tuple[str, str]] = []
    for part in " ".join(ln.strip() for ln in head_lines).split(" ---> "):
        match = _HEAD.match(part.strip())
        if match:
            heads.append((match["type"], (match["value"] or "").strip()))
        elif heads:
            heads[-1] = (heads[-1][0], heads[-1][1] + " " + part.strip())
    if not heads:
        return None
    root_first = heads[::-1]  # innermost exception is the root cause
    chain = []
    for i, (type_, value) in enumerate(root_first):
        frames = stacks[i] if i < len(stacks) else []
        chain.append(exception(type_, value, frames[::-1]))
    return bounded_chain(chain)
