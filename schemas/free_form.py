"""Bounds for free-form JSON values (``context``, breadcrumb ``data``).

Shared by the pydantic models and their msgspec mirror so both refuse the same
values with the same message. The walk is recursive but stops at
``MAX_DEPTH``, so it cannot itself exhaust the stack, and it visits at most
``MAX_FREE_FORM_VALUES`` values, so a hostile event costs bounded time.
"""

from __future__ import annotations

import math
from typing import Any

from schemas.limits import MAX_DEPTH, MAX_FREE_FORM_VALUES, MAX_INT, MIN_INT


class FreeFormError(ValueError):
    """A bound broken at ``path`` (keys and indexes below the field)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []

    def __str__(self) -> str:
        where = "".join(reversed(self.path))
        return f"{where.lstrip('.') or '(value)'}: {self.problem}" if self.path else self.problem


def _problem(item: Any) -> str | None:
    """What is wrong with a scalar that is not a str, bool or None, if anything."""
    t = type(item)
    if t is int:
        return None if MIN_INT <= item <= MAX_INT else f"integer out of range ({MIN_INT}..{MAX_INT})"
    if t is float:
        return None if math.isfinite(item) else "not a finite number (NaN, Infinity, or beyond a double's range)"
    # Other Python objects only come from Python callers, who serialise them to JSON before the worker sees them.
    return None


def _walk(value: dict[str, Any] | list[Any], depth: int, left: int) -> int:
    """Checks a container's items (one call per container, not per value); returns the values budget left."""
    left -= len(value)
    if left < 0:
        raise FreeFormError(f"more than {MAX_FREE_FORM_VALUES} values")
    is_dict = type(value) is dict
    for key, item in (value.items() if is_dict else enumerate(value)):  # type: ignore[union-attr]
        t = type(item)
        if t is str or t is bool or item is None:
            continue
        try:
            if t is dict or t is list:
                if depth + 1 >= MAX_DEPTH:
                    raise FreeFormError(f"nested deeper than {MAX_DEPTH} levels")
                left = _walk(item, depth + 1, left)
            elif (problem := _problem(item)) is not None:
                raise FreeFormError(problem)
        except FreeFormError as exc:
            exc.path.append(f".{key}" if is_dict else f"[{key}]")
            raise
    return left


def check_free_form(value: dict[str, Any] | list[Any]) -> None:
    """Raises ``FreeFormError`` (a ``ValueError``) when ``value`` breaks a bound; the top level is depth 0."""
    _walk(value, 0, MAX_FREE_FORM_VALUES)
