"""Folding a stack trace for reading: in-app frames shown, runs of library frames folded.

A triage engineer reads their own code first; a trace from a web framework can hold dozens of
framework frames around two of the app's. Runs of library frames become one ``<details>`` ("12
library frames"), which opens without JavaScript. The innermost (raising) frame is always shown,
and a trace with no in-app frame at all is shown whole (nothing to read first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FrameGroup:
    folded: bool  # a run of library frames, folded
    frames: list[Any] = field(default_factory=list)


def fold(frames_innermost_first: Sequence[Any]) -> list[FrameGroup]:
    """Groups of frames in the given order (innermost first, as the page shows them)."""
    frames = list(frames_innermost_first)
    if not any(getattr(f, "in_app", False) for f in frames):
        return [FrameGroup(False, frames)] if frames else []
    groups: list[FrameGroup] = []
    for i, fr in enumerate(frames):
        folded = not fr.in_app and i > 0
        if groups and groups[-1].folded == folded:
            groups[-1].frames.append(fr)
        else:
            groups.append(FrameGroup(folded, [fr]))
    return groups
