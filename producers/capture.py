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
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
from datetime import UTC, datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, NamedTuple

from schemas.events import ErrorEvent, ExceptionInfo
from schemas.limits import MAX_CHAIN, MAX_CONTEXT_LINE, MAX_FRAMES, MAX_MESSAGE, MAX_PATH, MAX_SHORT

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


def _raw_frames(tb: TracebackType | None) -> list[RawFrame]:
    frames: list[RawFrame] = []
    append = frames.append
    while tb is not None:
        code = tb.tb_frame.f_code
        name = tb.tb_frame.f_globals.get("__name__")
        # tuple.__new__ rather than RawFrame(...): half the cost, the same tuple.
        append(tuple.__new__(RawFrame, (code.co_filename, name if isinstance(name, str) else None,
                                        code.co_qualname, tb.tb_lineno or 0)))
        tb = tb.tb_next
    if len(frames) > MAX_FRAMES:  # keep both ends: where it started and where it raised
        half = MAX_FRAMES // 2
        frames = frames[:half] + frames[-half:]
    return frames


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the event
        return f"<unprintable {type(exc).__name__}>"


def snapshot_exception(exc: BaseException) -> list[RawException]:
    """The chain, root cause first and the exception finally raised last (Sentry's order)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return [
        RawException(type(e).__qualname__, type(e).__module__, _safe_str(e), _raw_frames(e.__traceback__))
        for e in reversed(chain)
    ]


@lru_cache(maxsize=4096)
def _path_facts(co_filename: str) -> tuple[str, str, bool]:
    """(basename, abs_path, in_app) — the same few files appear in every stack, so cache them."""
    synthetic = co_filename.startswith("<")
    abs_path = co_filename if synthetic else os.path.abspath(co_filename)
    return os.path.basename(co_filename), abs_path[:MAX_PATH], is_in_app(abs_path, None)


@lru_cache(maxsize=16384)
def frame_dict(raw: RawFrame) -> dict[str, Any]:
    """Cached: the same failing lines recur, so their frames are built once (callers must not mutate them)."""
    filename, abs_path, in_app = _path_facts(raw.co_filename)
    line = linecache.getline(raw.co_filename, raw.lineno).strip() if raw.lineno else ""
    return {
        "filename": filename[:MAX_PATH],
        "abs_path": abs_path,
        "module": cut(raw.module, MAX_SHORT),
        "function": cut(raw.function, MAX_SHORT),
        "lineno": raw.lineno,
        "in_app": in_app,
        "context_line": cut(line, MAX_CONTEXT_LINE) if line else None,
    }


def exception_dicts(
    snapshot: list[RawException], handled: bool | None = None, mechanism: str = "generic"
) -> list[dict[str, Any]]:
    """The snapshot in the JSON shape of ``ExceptionInfo`` (already within the schema's limits)."""
    return [
        {
            "type": cut(raw.type, MAX_SHORT),
            "module": cut(raw.module, MAX_SHORT),
            "value": cut(raw.value, MAX_MESSAGE),
            "mechanism": {"type": mechanism, "handled": handled},
            "stacktrace": [frame_dict(f) for f in raw.frames],
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
