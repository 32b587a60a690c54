"""Python's printed traceback (``traceback.format_exception``), chained exceptions included.

Python prints the root cause first and each traceback outermost call first, which is already the order
of the Sentry path. Frames get what the Sentry Python SDK would send: in-app when under the source root
(its ``project_root``) and never inside site-packages or dist-packages, and a dotted module name taken from
the path below the root or below site-packages (the SDK's ``__name__``), so both group alike.
"""

from __future__ import annotations

import re
from typing import Any

from producers.gateway.stacktrace_text.common import bounded_chain, exception, frame, split_type, under_root

_HEADER = "Traceback (most recent call last):"
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]*)", line (?P<line>\d+)(?:, in (?P<func>.*))?$')
_CHAIN_LINES = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)
_TYPE_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::(?P<value> ?.*))?$")
_PACKAGES = re.compile(r"[\\/](?:site|dist)-packages[\\/]")
_STDLIB = re.compile(r"[\\/]lib[\\/]python\d+(?:\.\d+)?[\\/]")
_SUFFIX = re.compile(r"\.py[cwo]?$")


def _module(path: str, root: str | None) -> tuple[str | None, bool | None]:
    """(dotted module, in_app) for a file path, as the Sentry Python SDK would have them."""
    parts = _PACKAGES.split(path)
    if len(parts) > 1:
        return _SUFFIX.sub("", parts[-1]).replace("/", ".").replace("\\", "."), False
    relative = under_root(path, root)
    if relative is not None:
        dotted = _SUFFIX.sub("", relative).replace("/", ".").replace("\\", ".")
        return dotted.removesuffix(".__init__"), True
    if _STDLIB.search(path):
        return _SUFFIX.sub("", _STDLIB.split(path)[-1]).replace("/", "."), None
    return None, None


def _block(lines: list[str], root: str | None) -> dict[str, Any] | None:
    """One ``Traceback ...`` block up to and including its exception line(s)."""
    frames: list[dict[str, Any]] = []
    i = 0
    while i < len(lines):
        match = _FRAME.match(lines[i])
        if match:
            path = match["path"]
            module, in_app = _module(path, root)
            code = None
            if i + 1 < len(lines) and lines[i + 1].startswith("    ") and not _FRAME.match(lines[i + 1]):
                code = lines[i + 1].strip()
                i += 1
            frames.append(frame(filename=path, abs_path=path, module=module, function=match["func"] or None,
                                lineno=int(match["line"][:10]), in_app=in_app, context_line=code))
            i += 1
            continue
        stripped = lines[i].strip()
        # markers under the code line (^^^^, ~~~^^^) and the "[Previous line repeated N more times]" note
        if not lines[i].startswith(" ") and stripped:
            typed = _TYPE_LINE.match(stripped)
            if typed is None:
                return None
            name, module = split_type(typed["type"])
            value = "\n".join([(typed["value"] or "").strip(), *[ln for ln in lines[i + 1:] if ln.strip()]])
            return exception(name, value, frames, module)
        i += 1
    return None


def parse(text: str, root: str | None) -> list[dict[str, Any]] | None:
    if _HEADER not in text:
        return None
    chain: list[dict[str, Any]] = []
    current: list[str] | None = None
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line.strip() == _HEADER:
            current = []
            blocks.append(current)
        elif line.strip() in _CHAIN_LINES:
            current = None
        elif current is not None:
            current.append(line)
    for block in blocks:
        parsed = _block(block, root)
        if parsed is not None:
            chain.append(parsed)
    return bounded_chain(chain) or None
