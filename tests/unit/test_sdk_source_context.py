"""The SDK's source context and locals stay bounded: lines, line length, locals per frame, repr length and depth."""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest

from producers.capture import (
    CONTEXT_LINES,
    FILTERED,
    LOCAL_REPR_CHARS,
    LOCALS_FRAMES,
    LOCALS_PER_FRAME,
    SOURCE_LINE_CHARS,
    exception_dicts,
    safe_repr,
    snapshot_exception,
)


def _sensitive(name: str) -> bool:
    return "password" in name or "token" in name


class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _raise_with(tmp_path: Path, source: str, call: str) -> BaseException:
    """Raise from a real module file (so linecache reads its lines)."""
    path = tmp_path / f"mod_{abs(hash(source))}.py"
    path.write_text(source)
    namespace: dict[str, Any] = {"__name__": "mod", "Broken": Broken}
    exec(compile(source, str(path), "exec"), namespace)
    try:
        eval(call, namespace)
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


def test_lines_around_each_frame_are_bounded_and_keep_their_indentation(tmp_path: Path) -> None:
    long = "x = '" + "y" * 1000 + "'"
    source = "\n".join([f"# line {i}" for i in range(1, 11)] + [
        "def f():", f"    {long}", "    a = 1", "    raise ValueError('boom')", "    return a",
    ] + [f"# after {i}" for i in range(10)]) + "\n"
    exc = _raise_with(tmp_path, source, "f()")
    (chain,) = exception_dicts(snapshot_exception(exc), context=CONTEXT_LINES)
    frame = chain["stacktrace"][-1]
    assert frame["context_line"] == "    raise ValueError('boom')"
    assert len(frame["pre_context"]) == len(frame["post_context"]) == CONTEXT_LINES
    assert frame["pre_context"][-1] == "    a = 1" and frame["post_context"][0] == "    return a"
    assert frame["pre_context"][-2].endswith("…") and len(frame["pre_context"][-2]) == SOURCE_LINE_CHARS
    (bare,) = exception_dicts(snapshot_exception(exc))  # context 0: as before, one stripped line
    assert "pre_context" not in bare["stacktrace"][-1]
    assert bare["stacktrace"][-1]["context_line"] == "raise ValueError('boom')"


def test_near_the_top_of_a_file_fewer_lines_come_before(tmp_path: Path) -> None:
    exc = _raise_with(tmp_path, "def f():\n    raise KeyError(1)\n", "f()")
    frame = exception_dicts(snapshot_exception(exc), context=CONTEXT_LINES)[0]["stacktrace"][-1]
    assert frame["pre_context"] == ["def f():"] and frame["post_context"] == []


def test_locals_are_bounded_reprs_and_sensitive_names_are_never_repred(tmp_path: Path) -> None:
    names = "\n".join(f"    v{i} = {i}" for i in range(40))
    source = (
        "def f(password, api_token, nested, text, broken):\n"
        f"{names}\n"
        "    raise ValueError('boom')\n"
    )
    exc = _raise_with(tmp_path, source, "f(Broken(), 's3cret', [[[[[1]]]]] * 3, 'z' * 5000, Broken())")
    vars_ = exception_dicts(snapshot_exception(exc, _sensitive))[0]["stacktrace"][-1]["vars"]
    assert len(vars_) == LOCALS_PER_FRAME
    assert vars_["password"] == vars_["api_token"] == FILTERED  # Broken's repr would have raised: never called
    assert vars_["nested"] == "[[[[...]]], [[[...]]], [[[...]]]]"
    assert len(vars_["text"]) <= LOCAL_REPR_CHARS
    assert vars_["broken"] == "<unrepresentable Broken>"  # its __repr__ raised: named, not raised
    assert vars_["v0"] == "0"


def test_locals_of_in_app_frames_and_the_raising_one_only(tmp_path: Path) -> None:
    import json  # a library frame raising: the standard library's

    try:
        json.loads("{bad json")
    except ValueError as exc:
        frames = exception_dicts(snapshot_exception(exc, _sensitive))[-1]["stacktrace"]
    assert frames[0]["in_app"] and "tmp_path" in frames[0]["vars"]  # this test's frame
    lib = [f for f in frames if not f["in_app"]]
    assert lib and all("vars" not in f for f in lib[:-1]) and "vars" in frames[-1]  # the raising frame has them


def test_at_most_so_many_frames_carry_locals(tmp_path: Path) -> None:
    source = "def f(n):\n    if n == 0:\n        raise ValueError('deep')\n    return f(n - 1)\n"
    exc = _raise_with(tmp_path, source, f"f({LOCALS_FRAMES + 10})")
    frames = exception_dicts(snapshot_exception(exc, _sensitive))[0]["stacktrace"]
    with_vars = [i for i, f in enumerate(frames) if "vars" in f]
    assert len(with_vars) == LOCALS_FRAMES and with_vars[-1] == len(frames) - 1  # the innermost ones


def test_a_modules_globals_are_not_its_locals(tmp_path: Path) -> None:
    path = tmp_path / "top.py"
    path.write_text("import os\nSECRET_PATH = os.sep\nraise RuntimeError('at import')\n")
    try:
        exec(compile(path.read_text(), str(path), "exec"), {"__name__": "top"})
    except RuntimeError as exc:
        frames = exception_dicts(snapshot_exception(exc, _sensitive))[0]["stacktrace"]
    assert frames[-1]["function"] == "<module>" and "vars" not in frames[-1]


@pytest.mark.parametrize("value, expected", [
    ("x" * 10, "'xxxxxxxxxx'"),
    ((1,), "(1,)"),
    (set(), "set()"),
    (OrderedDict(a=[1]), "OrderedDict({'a': [1]})"),
    (list(range(20)), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...]"),
    ({"a": {"b": {"c": {"d": 1}}}}, "{'a': {'b': {'c': {...}}}}"),
])
def test_safe_repr(value: Any, expected: str) -> None:
    assert safe_repr(value) == expected


def test_a_large_value_costs_what_a_small_one_does() -> None:
    """Only what the kept repr shows is read: counted in items repr'd, not timed (the machine may be busy)."""
    shown: list[int] = []

    class Item:
        def __repr__(self) -> str:
            shown.append(1)
            return "item"

    big = {"rows": [[Item() for _ in range(1000)] for _ in range(1000)], "text": "x" * 10_000_000}
    text = safe_repr(big)
    assert len(text) <= LOCAL_REPR_CHARS and 0 < len(shown) <= LOCAL_REPR_CHARS // len("item")


def test_a_huge_repr_is_cut() -> None:
    class Loud:
        def __repr__(self) -> str:
            return "L" * 10_000

    assert len(safe_repr(Loud())) == LOCAL_REPR_CHARS and safe_repr(Loud()).endswith("…")


def test_the_client_sends_both_and_can_opt_out(tmp_path: Path) -> None:
    from errstream_core.settings import Settings
    from producers.sdk import Client

    settings = Settings(kafka_bootstrap="127.0.0.1:9", home=tmp_path)
    on = Client("shop", settings=settings, resources=False)
    off = Client("shop", settings=settings, resources=False, source_context=False, include_locals=False)
    try:
        def charge(password: str) -> None:
            amount = 12
            raise ValueError(f"declined {amount}")

        try:
            charge("hunter2")
        except ValueError:
            snapshot_on = snapshot_exception(sys.exc_info()[1], on._sensitive_name)  # type: ignore[arg-type]
            assert off._sensitive_name is None
        frame = exception_dicts(snapshot_on, context=on.context_lines)[0]["stacktrace"][-1]
        assert frame["vars"] == {"password": FILTERED, "amount": "12"} and frame["pre_context"]
        assert off.context_lines == 0
    finally:
        on.close(0.1)
        off.close(0.1)
