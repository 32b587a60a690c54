"""Systematic mutations of a JSON document, for tests that compare two implementations of one contract."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any


def paths(obj: Any, path: list[Any] | None = None) -> Iterator[list[Any]]:
    """Every key of every object and the first two items of every list, as paths from the root."""
    path = path or []
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield [*path, key]
            yield from paths(value, [*path, key])
    elif isinstance(obj, list):
        for i, value in enumerate(obj[:2]):
            yield [*path, i]
            yield from paths(value, [*path, i])


def mutations(doc: dict[str, Any], bad_values: list[Any]) -> Iterator[dict[str, Any]]:
    """Copies of ``doc`` with one value at a time (at every path) replaced by each of ``bad_values``."""
    for path in paths(doc):
        for value in bad_values:
            mutated = copy.deepcopy(doc)
            target = mutated
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
            yield mutated
