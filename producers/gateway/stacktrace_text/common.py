"""Helpers the language parsers share: bounded field values, type/module splitting, in-app by root."""

from __future__ import annotations

from typing import Any

from schemas.limits import MAX_CHAIN, MAX_CONTEXT_LINE, MAX_FRAMES, MAX_MESSAGE, MAX_PATH, MAX_SHORT


def cut(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    return value if len(value) <= limit else value[: limit - 1] + "…"


def frame(*, filename: str | None = None, module: str | None = None, function: str | None = None,
          lineno: int | None = None, colno: int | None = None, in_app: bool | None = None,
          context_line: str | None = None, abs_path: str | None = None) -> dict[str, Any]:
    return {
        "filename": cut(filename, MAX_PATH), "abs_path": cut(abs_path, MAX_PATH), "module": cut(module, MAX_SHORT),
        "function": cut(function, MAX_SHORT),
        "lineno": lineno if lineno is not None and 0 <= lineno < 2**32 else None,
        "colno": colno if colno is not None and 0 <= colno < 2**32 else None,
        "in_app": in_app, "context_line": cut(context_line, MAX_CONTEXT_LINE),
    }


def exception(type_: str, value: str, frames: list[dict[str, Any]], module: str | None = None) -> dict[str, Any]:
    if len(frames) > MAX_FRAMES:  # keep where it started and where it raised, as the Sentry path does
        frames = frames[: MAX_FRAMES // 2] + frames[-(MAX_FRAMES // 2):]
    return {"type": cut(type_.strip(), MAX_SHORT) or "Error", "value": cut(value.strip(), MAX_MESSAGE) or "",
            "module": cut(module, MAX_SHORT), "stacktrace": frames}


def split_type(qualified: str) -> tuple[str, str | None]:
    """``pkg.mod.Error`` → (``Error``, ``pkg.mod``): the split Sentry's Python and Java SDKs send."""
    qualified = qualified.strip()
    if "." in qualified:
        module, _, name = qualified.rpartition(".")
        if name:
            return name, module or None
    return qualified, None


def bounded_chain(chain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most ``MAX_CHAIN`` exceptions, keeping the outermost ones as the Sentry path does."""
    return chain[-MAX_CHAIN:]


def under_root(path: str, root: str | None) -> str | None:
    """``path`` relative to ``root`` when it lies below it, else None."""
    if not root:
        return None
    root = root.rstrip("/\\") + ("\\" if "\\" in root and "/" not in root else "/")
    return path[len(root):] if path.startswith(root) else None
