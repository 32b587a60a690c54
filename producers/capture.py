"""Python exceptions → ``ErrorEvent``.

Walks ``__cause__`` / ``__context__`` so chained exceptions keep their root
cause, and marks frames ``in_app`` unless they come from the standard library
or site-packages — the same rule Sentry's Python SDK applies by default.
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from schemas.events import ErrorEvent, ExceptionInfo, Mechanism, StackFrame
from schemas.limits import MAX_CHAIN, MAX_FRAMES

_NOT_APP_PREFIXES = tuple(
    {p for p in (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib")) if p}
)


def is_in_app(abs_path: str, module: str | None) -> bool:
    if "site-packages" in abs_path or "dist-packages" in abs_path:
        return False
    if abs_path.startswith(_NOT_APP_PREFIXES):
        return False
    return not abs_path.startswith("<")


def _module_of(frame_globals: dict[str, Any]) -> str | None:
    name = frame_globals.get("__name__")
    return name if isinstance(name, str) else None


def frames_from_traceback(tb: TracebackType | None) -> list[StackFrame]:
    frames: list[StackFrame] = []
    for frame, lineno in traceback.walk_tb(tb):
        code = frame.f_code
        abs_path = os.path.abspath(code.co_filename) if not code.co_filename.startswith("<") else code.co_filename
        module = _module_of(frame.f_globals)
        line = linecache.getline(code.co_filename, lineno).strip() or None
        frames.append(
            StackFrame(
                filename=os.path.basename(code.co_filename),
                abs_path=abs_path[:1024],
                module=module,
                function=code.co_qualname if hasattr(code, "co_qualname") else code.co_name,
                lineno=lineno,
                in_app=is_in_app(abs_path, module),
                context_line=line[:1024] if line else None,
            )
        )
    if len(frames) > MAX_FRAMES:  # keep both ends: where it started and where it raised
        half = MAX_FRAMES // 2
        frames = frames[:half] + frames[-half:]
    return frames


def exception_chain(exc: BaseException, handled: bool | None = None, mechanism: str = "generic") -> list[ExceptionInfo]:
    """Root cause first, the exception finally raised last (Sentry's order)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    infos = []
    for e in reversed(chain):
        infos.append(
            ExceptionInfo(
                type=type(e).__qualname__,
                module=type(e).__module__,
                value=str(e)[:8192],
                mechanism=Mechanism(type=mechanism, handled=handled),
                stacktrace=frames_from_traceback(e.__traceback__),
            )
        )
    return infos


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
