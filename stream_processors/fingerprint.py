"""Grouping key, title and culprit of an event.

The fingerprint must be stable across processes, releases and Python versions,
so it is a BLAKE2b digest of explicit components, never ``hash()``; it uses
module and function names of in-app frames, never line numbers or paths.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas.events import ErrorEvent, ExceptionInfo, StackFrame


@dataclass(frozen=True, slots=True)
class Grouping:
    fingerprint: str
    title: str
    culprit: str
    exception_type: str


def digest(parts: list[str]) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()


def _frame_key(frame: StackFrame) -> str:
    return f"{frame.module or frame.filename or '?'}.{frame.function or '?'}"


def _grouping_frames(exc: ExceptionInfo) -> list[StackFrame]:
    in_app = [f for f in exc.stacktrace if f.in_app]
    return in_app or list(exc.stacktrace)


def group_event(event: ErrorEvent) -> Grouping:
    if event.exceptions:
        exc = event.exceptions[0]  # root cause: the innermost exception of the chain
        top = event.exceptions[-1]
        frames = _grouping_frames(exc)
        parts = ["exception", exc.type, *(_frame_key(f) for f in frames)]
        if not frames:
            parts += ["message", exc.value]
        culprit_frame = frames[-1] if frames else None
        culprit = (
            f"{culprit_frame.module or culprit_frame.filename} in {culprit_frame.function}"
            if culprit_frame
            else ""
        )
        title = f"{top.type}: {top.value}" if top.value else top.type
        fp_type = exc.type
    else:
        parts = ["message", event.logger or "", event.level, event.message or ""]
        title = (event.message or "<no message>").splitlines()[0] if event.message else "<no message>"
        culprit = event.logger or ""
        fp_type = ""
    if event.fingerprint:
        parts = ["custom", *event.fingerprint]
    return Grouping(digest(parts), title[:400], culprit[:400], fp_type)
