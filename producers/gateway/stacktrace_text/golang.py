"""Go's panics and goroutine dumps (``debug.Stack()``, an unrecovered ``panic: ...``).

Go prints the goroutine's frames innermost first, each as a function line (``pkg/path.Func(args)``)
followed by a tab-indented ``file:line +0xoff`` line; only the first goroutine (the one that panicked or
called ``debug.Stack``) is this error's stack. ``runtime`` frames (``gopanic``, ``debug.Stack``) and
standard-library packages are not in-app; module is the package path and function the rest, as the Sentry
Go SDK sends them.
"""

from __future__ import annotations

import re
from typing import Any

from producers.gateway.stacktrace_text.common import exception, frame

_GOROUTINE = re.compile(r"^goroutine \d+ \[[^\]]*\]:$")
_FUNC = re.compile(r"^(?P<name>[\w./*()\[\]{}$,~-]+?)(?:\((?P<args>[^()]*)\))?$")
_FILE = re.compile(r"^\t(?P<file>.+?):(?P<line>\d+)(?: \+0x[0-9a-f]+)?$")
_PANIC = re.compile(r"^panic: (?P<value>.*?)(?: \[recovered\])?$")


def _split(name: str) -> tuple[str, str]:
    """``github.com/a/b/pkg.(*T).Method`` → (``github.com/a/b/pkg``, ``(*T).Method``)."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    return (name[:dot], name[dot + 1:]) if dot > 0 else ("", name)


def _in_app(module: str, path: str) -> bool:
    first = module.split("/", 1)[0]
    if "/go/pkg/mod/" in path or "/vendor/" in path:
        return False
    return "." in first or module == "main" or (first != "runtime" and "/" not in module and "/src/" not in path
                                                and module not in _STDLIB_TOP)


_STDLIB_TOP = frozenset({"runtime", "net", "os", "io", "fmt", "sync", "syscall", "reflect", "encoding", "crypto",
                         "database", "context", "errors", "strconv", "strings", "bufio", "time", "testing"})


def parse(text: str, root: str | None) -> list[dict[str, Any]] | None:
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if _GOROUTINE.match(ln.strip())), None)
    if start is None:
        return None
    panic = next((_PANIC.match(ln) for ln in lines[:start] if _PANIC.match(ln)), None)
    frames: list[dict[str, Any]] = []
    i = start + 1
    while i + 1 < len(lines):
        line = lines[i]
        if not line.strip() or _GOROUTINE.match(line.strip()):  # the next goroutine: not this error's
            break
        func, where = _FUNC.match(line), _FILE.match(lines[i + 1])
        if func and where and not line.startswith("created by "):
            module, function = _split(func["name"])
            path = where["file"]
            frames.append(frame(filename=path, abs_path=path, module=module or None, function=function,
                                lineno=int(where["line"][:10]), in_app=_in_app(module, path)))
            i += 2
            continue
        i += 1
    if not frames:
        return None
    value = panic["value"] if panic else ""
    return [exception("panic" if panic else "error", value, frames[::-1])]
