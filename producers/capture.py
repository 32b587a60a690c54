"""Python exceptions → ``ErrorEvent``.

Walks ``__cause__`` / ``__context__`` so chained exceptions keep their root
cause, and marks frames ``in_app`` unless they come from the standard library
or site-packages — the same rule Sentry's Python SDK applies by default.

Capture is split in two steps so the SDK can keep the application's thread
cheap: ``snapshot_exception`` runs on the caller's thread and copies only what
may change or die later (the exception's text and each traceback entry's code
location), releasing the traceback so no frame locals stay alive in a queue;
``exception_dicts`` turns that snapshot into the schema's JSON shape (source
lines, absolute paths, ``in_app``) and may run later, on another thread.

Source context and locals, as Sentry's SDKs send them (the event page shows both):

* ``pre_context`` / ``post_context``: up to ``CONTEXT_LINES`` lines either side of each
  frame's line, each cut to ``SOURCE_LINE_CHARS``, read on the sender thread through
  ``linecache`` (the file is read once; the frame's dict is memoised per code location).
* ``vars``: the frame's local variables, taken on the caller's thread because they change
  once the stack unwinds: only for in-app frames and the frame that raised, at most
  ``LOCALS_FRAMES`` frames (innermost first) and ``LOCALS_PER_FRAME`` names per frame, each
  value a repr bounded in length and depth (``safe_repr``). A local whose name looks sensitive
  (``password``, ``token``, … as the scrubber's keys) is never repr'd: it is sent as
  ``[Filtered]``. The worker scrubs values again.
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from functools import lru_cache
from types import FrameType, TracebackType
from typing import Any, NamedTuple

from schemas.events import ErrorEvent, ExceptionInfo
from schemas.limits import (
    MAX_CHAIN,
    MAX_CONTEXT_LINE,
    MAX_CONTEXT_LINES,
    MAX_FRAME_VARS,
    MAX_FRAMES,
    MAX_MESSAGE,
    MAX_PATH,
    MAX_SHORT,
)

CONTEXT_LINES = 5  # source lines before and after a frame's line (Sentry's SDKs send 5; the schema takes 10)
SOURCE_LINE_CHARS = 256  # each of those lines at most (a minified or generated line is cut)
LOCALS_FRAMES = 10  # frames whose locals are sent: in-app ones and the raising one, innermost first
LOCALS_PER_FRAME = 25  # names per frame (the schema takes 50)
LOCAL_REPR_CHARS = 200  # one local's repr at most
FILTERED = "[Filtered]"  # the scrubber's placeholder

assert CONTEXT_LINES <= MAX_CONTEXT_LINES and LOCALS_PER_FRAME <= MAX_FRAME_VARS


_SCALARS = frozenset({int, float, bool, complex, type(None)})
_BRACKETS: tuple[tuple[type[Collection[Any]], str, str], ...] = (
    (list, "[", "]"), (tuple, "(", ")"), (set, "{", "}"), (frozenset, "frozenset({", "})"))
REPR_DEPTH = 3  # levels of containers shown; deeper ones are "[...]", "{...}"
REPR_ITEMS = 10  # items shown per container; more are "..."


def _repr(value: Any, level: int, budget: int) -> str:
    """``value``'s repr, within about ``budget`` characters: containers (dicts, lists, tuples, sets and
    their subclasses) walked to ``level`` levels and ``REPR_ITEMS`` items, strings and bytes sliced before
    they are repr'd (so a large value costs no more than a small one), anything else its own ``repr``."""
    kind = type(value)
    if kind is str or kind is bytes:
        return repr(value if len(value) <= budget else value[:budget])
    if kind in _SCALARS:
        return repr(value)
    if isinstance(value, dict):
        if not value:
            text = "{}"
        elif level <= 0:
            text = "{...}"
        else:
            parts, used = [], 2
            for n, (k, v) in enumerate(value.items()):
                if n >= REPR_ITEMS or used >= budget:
                    parts.append("...")
                    break
                part = f"{_repr(k, level - 1, budget - used)}: {_repr(v, level - 1, budget - used)}"
                parts.append(part)
                used += len(part) + 2
            text = "{" + ", ".join(parts) + "}"
        return text if kind is dict else f"{kind.__name__}({text})"
    for base, left, right in _BRACKETS:
        if isinstance(value, base):
            items: Collection[Any] = value
            if not items:
                text = f"{left}{right}" if base is not set else "set()"
            elif level <= 0:
                text = f"{left}...{right}"
            else:
                parts, used = [], len(left) + len(right)
                for n, item in enumerate(items):
                    if n >= REPR_ITEMS or used >= budget:
                        parts.append("...")
                        break
                    part = _repr(item, level - 1, budget - used)
                    parts.append(part)
                    used += len(part) + 2
                inner = ", ".join(parts)
                text = f"({inner},)" if base is tuple and len(items) == 1 else f"{left}{inner}{right}"
            return text if kind is base else f"{kind.__name__}({text})"
    if isinstance(value, str):  # a str subclass
        return repr(str(value[:budget]))
    return repr(value)


_NOT_APP_PREFIXES = tuple(
    {p for p in (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib")) if p}
)


def is_in_app(abs_path: str, module: str | None) -> bool:
    if "site-packages" in abs_path or "dist-packages" in abs_path:
        return False
    if abs_path.startswith(_NOT_APP_PREFIXES):
        return False
    return not abs_path.startswith("<")


def cut(value: str | None, limit: int) -> str | None:
    """Truncate to a schema limit: producers shorten, the worker rejects what is still too long."""
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


class RawFrame(NamedTuple):
    """One traceback entry as the caller's thread saw it: no frame object is kept."""

    co_filename: str
    module: str | None
    function: str
    lineno: int


class RawException(NamedTuple):
    type: str
    module: str
    value: str
    frames: list[RawFrame]
    # per frame (same order): its locals as bounded reprs, or None; None for the whole chain when not taken
    frame_vars: list[dict[str, str] | None] | None = None


def safe_repr(value: Any) -> str:
    """A bounded repr that never raises: length and depth capped, a broken ``__repr__`` named by its type."""
    try:
        text = _repr(value, REPR_DEPTH, LOCAL_REPR_CHARS)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= LOCAL_REPR_CHARS else text[: LOCAL_REPR_CHARS - 1] + "…"


def frame_locals(frame: FrameType, sensitive: Callable[[str], bool]) -> dict[str, str] | None:
    """The frame's local variables as bounded reprs; names that look sensitive are never repr'd."""
    if frame.f_code.co_name == "<module>":  # a module's "locals" are its globals: imports, functions, …
        return None
    try:
        names = frame.f_locals
    except Exception:
        return None
    out: dict[str, str] = {}
    for name, value in names.items():
        if len(out) >= LOCALS_PER_FRAME:
            break
        name = str(name)
        out[name[:MAX_SHORT]] = FILTERED if sensitive(name) else safe_repr(value)
    return out or None


def _raw_frames(tb: TracebackType | None) -> tuple[list[RawFrame], list[FrameType]]:
    frames: list[RawFrame] = []
    live: list[FrameType] = []
    append = frames.append
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        name = frame.f_globals.get("__name__")
        # tuple.__new__ rather than RawFrame(...): half the cost, the same tuple.
        append(tuple.__new__(RawFrame, (code.co_filename, name if isinstance(name, str) else None,
                                        code.co_qualname, tb.tb_lineno or 0)))
        live.append(frame)
        tb = tb.tb_next
    if len(frames) > MAX_FRAMES:  # keep both ends: where it started and where it raised
        half = MAX_FRAMES // 2
        frames = frames[:half] + frames[-half:]
        live = live[:half] + live[-half:]
    return frames, live


def _locals(frames: list[RawFrame], live: list[FrameType], sensitive: Callable[[str], bool]
            ) -> list[dict[str, str] | None] | None:
    """Locals of the in-app frames and of the raising one, innermost first, at most ``LOCALS_FRAMES``."""
    out: list[dict[str, str] | None] = [None] * len(frames)
    taken = 0
    for i in range(len(frames) - 1, -1, -1):
        if taken >= LOCALS_FRAMES:
            break
        if i == len(frames) - 1 or _path_facts(frames[i].co_filename)[2]:
            out[i] = frame_locals(live[i], sensitive)
            taken += 1
    return out if taken else None


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the event
        return f"<unprintable {type(exc).__name__}>"


def snapshot_exception(exc: BaseException, sensitive: Callable[[str], bool] | None = None) -> list[RawException]:
    """The chain, root cause first and the exception finally raised last (Sentry's order).

    With ``sensitive`` (a check of a variable's name), each exception's frames keep their locals
    (``frame_locals``); without it, none are taken."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    out = []
    for e in reversed(chain):
        frames, live = _raw_frames(e.__traceback__)
        values = _locals(frames, live, sensitive) if sensitive is not None and frames else None
        out.append(RawException(type(e).__qualname__, type(e).__module__, _safe_str(e), frames, values))
    return out


@lru_cache(maxsize=4096)
def _path_facts(co_filename: str) -> tuple[str, str, bool]:
    """(basename, abs_path, in_app) — the same few files appear in every stack, so cache them."""
    synthetic = co_filename.startswith("<")
    abs_path = co_filename if synthetic else os.path.abspath(co_filename)
    return os.path.basename(co_filename), abs_path[:MAX_PATH], is_in_app(abs_path, None)


@lru_cache(maxsize=16384)
def frame_dict(raw: RawFrame, context: int = 0) -> dict[str, Any]:
    """Cached: the same failing lines recur, so their frames are built once (callers must not mutate them).
    ``context``: source lines either side of the frame's line (``pre_context`` / ``post_context``)."""
    filename, abs_path, in_app = _path_facts(raw.co_filename)
    line = linecache.getline(raw.co_filename, raw.lineno) if raw.lineno else ""
    # with the lines around it, the line keeps its indentation so they align (grouping strips it either way)
    line = line.rstrip("\r\n") if context and line.strip() else line.strip()
    out: dict[str, Any] = {
        "filename": filename[:MAX_PATH],
        "abs_path": abs_path,
        "module": cut(raw.module, MAX_SHORT),
        "function": cut(raw.function, MAX_SHORT),
        "lineno": raw.lineno,
        "in_app": in_app,
        "context_line": cut(line, MAX_CONTEXT_LINE) if line else None,
    }
    if context and line and raw.lineno:
        lines = linecache.getlines(raw.co_filename)  # read once per file, then cached (and checked) by linecache
        at = raw.lineno - 1
        if at < len(lines):
            out["pre_context"] = [_source_line(x) for x in lines[max(0, at - context):at]]
            out["post_context"] = [_source_line(x) for x in lines[at + 1:at + 1 + context]]
    return out


def _source_line(line: str) -> str:
    line = line.rstrip("\r\n")
    return line if len(line) <= SOURCE_LINE_CHARS else line[: SOURCE_LINE_CHARS - 1] + "…"


def _frames(raw: RawException, context: int) -> list[dict[str, Any]]:
    if raw.frame_vars is None:
        return [frame_dict(f, context) for f in raw.frames]
    return [frame_dict(f, context) if v is None else {**frame_dict(f, context), "vars": v}
            for f, v in zip(raw.frames, raw.frame_vars, strict=True)]


def exception_dicts(
    snapshot: list[RawException], handled: bool | None = None, mechanism: str = "generic", context: int = 0,
) -> list[dict[str, Any]]:
    """The snapshot in the JSON shape of ``ExceptionInfo`` (already within the schema's limits); ``context``
    source lines either side of each frame's line."""
    return [
        {
            "type": cut(raw.type, MAX_SHORT),
            "module": cut(raw.module, MAX_SHORT),
            "value": cut(raw.value, MAX_MESSAGE),
            "mechanism": {"type": mechanism, "handled": handled},
            "stacktrace": _frames(raw, context),
        }
        for raw in snapshot
    ]


def exception_chain(exc: BaseException, handled: bool | None = None, mechanism: str = "generic") -> list[ExceptionInfo]:
    """Root cause first, the exception finally raised last (Sentry's order)."""
    return [ExceptionInfo.model_validate(d) for d in exception_dicts(snapshot_exception(exc), handled, mechanism)]


def event_from_exception(
    exc: BaseException | None = None,
    *,
    service: str,
    environment: str = "production",
    release: str | None = None,
    level: str = "error",
    handled: bool | None = True,
    timestamp: datetime | None = None,
    **fields: Any,
) -> ErrorEvent:
    if exc is None:
        exc = sys.exc_info()[1]
        if exc is None:
            raise ValueError("event_from_exception() needs an exception or an active `except` block")
    return ErrorEvent(
        service=service,
        environment=environment,
        release=release,
        level=level,  # type: ignore[arg-type]
        timestamp=timestamp or datetime.now(UTC),
        exceptions=exception_chain(exc, handled=handled),
        **fields,
    )
