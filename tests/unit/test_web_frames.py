"""Folding library frames of a stack trace (innermost first, as the page shows them)."""

from __future__ import annotations

from errstream.web.frames import fold
from schemas.events import StackFrame


def f(name: str, app: bool) -> StackFrame:
    return StackFrame(function=name, in_app=app)


def test_runs_of_library_frames_fold_but_the_raising_frame_shows() -> None:
    frames = [f("raise", False), f("lib1", False), f("lib2", False), f("view", True), f("mw1", False),
              f("mw2", False), f("main", True)]
    groups = fold(frames)
    assert [(g.folded, [x.function for x in g.frames]) for g in groups] == [
        (False, ["raise"]), (True, ["lib1", "lib2"]), (False, ["view"]), (True, ["mw1", "mw2"]), (False, ["main"])]


def test_a_trace_without_app_frames_is_shown_whole() -> None:
    frames = [f("a", False), f("b", False)]
    assert [(g.folded, len(g.frames)) for g in fold(frames)] == [(False, 2)]
    assert fold([]) == []
