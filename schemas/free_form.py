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


def _walk(value: Any, depth: int, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise FreeFormError(f"more than {MAX_FREE_FORM_VALUES} values")
    t = type(value)
    if t is str or t is bool or value is None:
        return
    if t is int:
        if not MIN_INT <= value <= MAX_INT:
            raise FreeFormError(f"integer out of range ({MIN_INT}..{MAX_INT})")
        return
    if t is float:
        if not math.isfinite(value):
            raise FreeFormError("not a finite number (NaN, Infinity, or beyond a double's range)")
        return
    if t is dict or t is list:
        if depth >= MAX_DEPTH:
            raise FreeFormError(f"nested deeper than {MAX_DEPTH} levels")
        items = value.items() if t is dict else enumerate(value)
        for key, item in items:
            try:
                _walk(item, depth + 1, budget)
            except FreeFormError as exc:
                exc.path.append(f".{key}" if t is dict else f"[{key}]")
                raise
    # Other Python objects only come from Python callers, who serialise them to JSON before the worker sees them.


def check_free_form(value: dict[str, Any] | list[Any]) -> None:
    """Raises ``FreeFormError`` (a ``ValueError``) when ``value`` breaks a bound; the top level is depth 0."""
    budget = [MAX_FREE_FORM_VALUES + 1]  # the container itself is not one of its values
    _walk(value, 0, budget)
