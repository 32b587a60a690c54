"""Real exceptions for grouping tests: code is loaded from source files and run until it raises.

Tests compare events captured from real tracebacks (``producers.capture``), not
hand-typed frames, so grouping is tested on what the SDK actually sends.
"""

from __future__ import annotations

import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from producers.capture import event_from_exception
from schemas.events import ErrorEvent


def load_module(directory: Path, name: str, source: str, *, padding: int = 0) -> types.ModuleType:
    """Module ``name`` from ``source`` written under ``directory``; ``padding`` blank lines shift every line."""
    path = directory.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n" * padding + textwrap.dedent(source))
    module = types.ModuleType(name)
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)  # noqa: S102 - test fixture code
    return module


def capture(fn: Callable[..., Any], *args: Any, service: str = "billing", **event_fields: Any) -> ErrorEvent:
    """Call ``fn`` (which must raise) and return the event the SDK would publish."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - any exception is what we want to capture
        return event_from_exception(exc, service=service, **event_fields)
    raise AssertionError(f"{fn!r} did not raise")
