"""``errstream bench compare``: one benchmark's latest run beside an earlier one, figure by figure.

Every ``errstream bench …`` appends its figures with the git commit to ``results.jsonl``; a
regression shows the day it lands only if someone looks, so this prints the two runs side by side
with the ratio of each numeric figure (nested figures flattened to dotted names). The earlier run is
the previous one of the same benchmark, or the latest one at a given commit. Ratios travel between
machines; absolute figures do not, so compare runs of one machine (the host is printed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def load(results: Path, bench: str) -> list[dict[str, Any]]:
    """The runs of ``bench`` in ``results``, oldest first; lines that are not records are skipped."""
    runs = []
    try:
        lines = results.read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("bench") == bench:
            runs.append(doc)
    return runs


def flatten(figures: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(figures, dict):
        for key, value in figures.items():
            yield from flatten(value, f"{prefix}{key}.")
    elif isinstance(figures, int | float) and not isinstance(figures, bool):
        yield prefix.rstrip("."), float(figures)


def pick(runs: list[dict[str, Any]], against: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(earlier, latest); ``against`` is a commit prefix, else the run before the latest."""
    if len(runs) < 2 and against is None:
        raise ValueError("needs two recorded runs of this benchmark")
    latest = runs[-1]
    if against is None:
        return runs[-2], latest
    matching = [r for r in runs[:-1] if str(r.get("commit") or "").startswith(against)]
    if not matching:
        raise ValueError(f"no earlier run at commit {against}")
    return matching[-1], latest


def table(earlier: dict[str, Any], latest: dict[str, Any]) -> list[str]:
    old = dict(flatten(earlier.get("figures", {})))
    new = dict(flatten(latest.get("figures", {})))
    def head(r: dict[str, Any]) -> str:
        return f"{r.get('commit') or '?'} at {r.get('at')} on {r.get('host')} (load {r.get('load_average')})"
    lines = [f"earlier: {head(earlier)}", f"latest:  {head(latest)}",
             f"{'figure':<44} {'earlier':>14} {'latest':>14} {'latest/earlier':>15}"]
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        ratio = f"{b / a:.3f}" if a not in (None, 0.0) and b is not None else "–"
        lines.append(f"{name:<44} {_num(a):>14} {_num(b):>14} {ratio:>15}")
    if earlier.get("params") != latest.get("params"):
        lines.append(f"note: the runs' parameters differ: {earlier.get('params')} vs {latest.get('params')}")
    return lines


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
