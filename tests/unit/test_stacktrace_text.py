"""Printed stack traces parse into the Sentry path's frames and chain order, per language."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

import msgspec
import pytest

from producers.gateway.stacktrace_text import MAX_TEXT, copy_chain, parse_chain, parse_stacktrace
from schemas.events import ExceptionInfo
from schemas.fast import ExceptionInfo as ExceptionInfoStruct

ROOT = str(Path(__file__).resolve().parents[2])

JAVA = """java.lang.IllegalStateException: could not load cart 7
\tat com.acme.shop.CartService.load(CartService.java:41)
\tat java.base/java.lang.Thread.run(Thread.java:833)
\tat com.acme.shop.Main.main(Main.java:5)
Caused by: java.io.IOException: disk gone
\tat com.acme.shop.Store.read(Store.java:20)
\tat com.acme.shop.CartService.load(CartService.java:39)
\t... 2 more
"""

NODE = """TypeError: Cannot read properties of undefined (reading 'total')
    at checkout (/srv/app/src/cart.js:10:15)
    at Layer.handle [as handle_request] (/srv/app/node_modules/express/lib/router/layer.js:95:5)
    at /srv/app/src/index.js:5:3
    at async Promise.all (index 0)
    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"""

GO_PANIC = """panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.handler(...)
\t/app/main.go:12 +0x1d
github.com/acme/shop/cart.(*Cart).Add(0xc000010000, {0x4b0f20, 0x5})
\t/app/cart/cart.go:33 +0x45
main.main()
\t/app/main.go:20 +0x25

goroutine 2 [chan receive]:
main.worker()
\t/app/main.go:40 +0x1
"""

DOTNET = """System.InvalidOperationException: Cart could not be saved
 ---> System.ArgumentException: Bad id (Parameter 'id')
   at Shop.Cart.Validate(Int32 id) in /src/Cart.cs:line 10
   at Shop.Cart.Add(Int32 id) in /src/Cart.cs:line 20
   --- End of inner exception stack trace ---
   at Shop.Cart.Add(Int32 id) in /src/Cart.cs:line 25
   at Shop.Program.Main(String[] args) in /src/Program.cs:line 5"""


def _keys(exc: dict[str, Any]) -> list[str]:
    return [f"{f['module']}.{f['function']}" for f in exc["stacktrace"]]


def _valid(chain: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    assert chain, "the text was not recognised"
    for exc in chain:
        ExceptionInfo.model_validate(exc)  # every parser's output fits the contract
    return chain


def _raise_chain() -> str:
    def inner() -> None:
        raise ValueError("price missing")

    try:
        try:
            inner()
        except ValueError as e:
            raise KeyError("cart 7") from e
    except KeyError as e:
        return "".join(traceback.format_exception(e))
    raise AssertionError


def test_python_chain_is_root_cause_first_with_modules_and_in_app_from_the_root() -> None:
    chain = _valid(parse_stacktrace(_raise_chain(), "python", ROOT))
    assert [(e["type"], e["module"]) for e in chain] == [("ValueError", None), ("KeyError", None)]
    assert chain[1]["value"] == "'cart 7'"
    me = "tests.unit.test_stacktrace_text"
    assert _keys(chain[0]) == [f"{me}._raise_chain", f"{me}.inner"]  # outermost call first
    assert all(f["in_app"] for f in chain[0]["stacktrace"])
    assert chain[0]["stacktrace"][-1]["context_line"] == 'raise ValueError("price missing")'


def test_python_library_frames_are_not_in_app_and_qualified_types_split() -> None:
    text = ('Traceback (most recent call last):\n'
            '  File "/venv/lib/python3.11/site-packages/httpx/_client.py", line 10, in send\n'
            '    return self._send()\n'
            'httpx.ConnectError: [Errno 111] Connection refused\n')
    [exc] = _valid(parse_stacktrace(text, None))
    assert (exc["type"], exc["module"], exc["value"]) == ("ConnectError", "httpx", "[Errno 111] Connection refused")
    assert exc["stacktrace"][0]["module"] == "httpx._client" and exc["stacktrace"][0]["in_app"] is False


def test_java_caused_by_and_n_more() -> None:
    chain = _valid(parse_stacktrace(JAVA, "java"))
    assert [(e["type"], e["module"]) for e in chain] == [("IOException", "java.io"),
                                                         ("IllegalStateException", "java.lang")]
    # the cause's "... 2 more" are the enclosing trace's last two frames; outermost first
    assert _keys(chain[0]) == ["com.acme.shop.Main.main", "java.lang.Thread.run", "com.acme.shop.CartService.load",
                               "com.acme.shop.Store.read"]
    assert chain[0]["stacktrace"][1]["in_app"] is False and chain[0]["stacktrace"][-1]["lineno"] == 20


def test_node_frames_outermost_first_and_node_modules_not_in_app() -> None:
    [exc] = _valid(parse_stacktrace(NODE, "nodejs", "/srv/app"))
    assert exc["type"] == "TypeError" and exc["value"] == "Cannot read properties of undefined (reading 'total')"
    funcs = [(f["function"], f["in_app"]) for f in exc["stacktrace"]]
    assert funcs == [("process.processTicksAndRejections", False), (None, True),
                     ("Layer.handle [as handle_request]", False), ("checkout", True)]
    assert exc["stacktrace"][-1]["module"] == "src/cart" and exc["stacktrace"][-1]["colno"] == 15


def test_go_panic_takes_the_panicking_goroutine_only() -> None:
    [exc] = _valid(parse_stacktrace(GO_PANIC, "go"))
    assert exc["type"] == "panic" and exc["value"].startswith("runtime error: index out of range")
    assert _keys(exc) == ["main.main", "github.com/acme/shop/cart.(*Cart).Add", "main.handler"]


def test_dotnet_inner_exception_is_the_root_cause() -> None:
    chain = _valid(parse_stacktrace(DOTNET, "dotnet"))
    assert [e["type"] for e in chain] == ["System.ArgumentException", "System.InvalidOperationException"]
    assert _keys(chain[0]) == ["Shop.Cart.Add", "Shop.Cart.Validate"]
    assert _keys(chain[1]) == ["Shop.Program.Main", "Shop.Cart.Add"]
    assert chain[1]["stacktrace"][0]["filename"] == "/src/Program.cs"


@pytest.mark.parametrize("text", [JAVA, NODE, GO_PANIC, DOTNET])
def test_the_shape_is_recognised_without_a_language_hint(text: str) -> None:
    assert parse_stacktrace(text, None) == parse_stacktrace(text, _language_of(text))


def _language_of(text: str) -> str:
    return {JAVA: "java", NODE: "nodejs", GO_PANIC: "go", DOTNET: "dotnet"}[text]


@pytest.mark.parametrize("text", ["", "   ", "connection reset by peer", "Traceback (most recent call last):\n",
                                  "\tat " * 50_000, "goroutine 1 [running]:\n" + "x\n" * 1000])
def test_unparseable_or_hostile_text_gives_none_quickly(text: str) -> None:
    assert parse_stacktrace(text, "python") is None


def test_huge_traces_are_cut_and_frames_bounded() -> None:
    frame = '  File "/srv/app/x.py", line 1, in f\n    f()\n'
    text = "Traceback (most recent call last):\n" + frame * 5_000 + "RecursionError: too deep\n"
    chain = parse_stacktrace(text, "python", "/srv/app")
    # cut at MAX_TEXT: the exception line is lost, so it is not taken for a complete trace
    assert len(text) > MAX_TEXT and chain is None
    text = "Traceback (most recent call last):\n" + frame * 600 + "RecursionError: too deep\n"
    [exc] = _valid(parse_stacktrace(text, "python", "/srv/app"))
    assert len(exc["stacktrace"]) == 250


ADVERSARIAL = {  # one line of MAX_TEXT characters in the shapes that made earlier patterns backtrack
    "java frame of slashes": "x.Y: z\n\tat " + "a/" * (MAX_TEXT // 2),
    "V8 frame of ' ('": "Error: x\n    at " + "f (" * (MAX_TEXT // 3),
    ".NET frame of dots": "System.X: y\n   at " + "a." * (MAX_TEXT // 2),
    "V8 location of ':1'": "Error: x\n    at f (" + "a:1" * (MAX_TEXT // 3),
    "Go function of '.('": "goroutine 1 [running]:\n" + "a.(" * (MAX_TEXT // 3) + "\n\t/x.go:1\n",
    "Python path": 'Traceback (most recent call last):\n  File "' + "a" * MAX_TEXT,
    "Java '... N more' everywhere": "x.Y: z\n" + "\tat a.b(C.java:1)\n" * 2000 + "Caused by: a.B: c\n\t... 99 more\n" * 500,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=list(ADVERSARIAL))
def test_hostile_text_costs_linear_time_in_every_parser(text: str) -> None:
    started = time.perf_counter()
    parse_stacktrace(text, None)  # no hint: every parser reads it
    assert time.perf_counter() - started < 2.0  # seconds: the backtracking patterns took 7 to 35


def test_a_cached_parse_is_not_changed_by_what_its_caller_does_with_its_copy() -> None:
    cached = parse_chain(JAVA, "java")
    assert cached and parse_chain(JAVA, "java") is cached  # parsed once, then reused
    first = copy_chain(cached)
    first[-1].value = "changed"
    first[-1].stacktrace[0].context_line = "changed"
    first[-1].stacktrace.clear()
    again = copy_chain(parse_chain(JAVA, "java") or ())
    assert again[-1].value == "could not load cart 7" and len(again[-1].stacktrace) == 3
    assert not any(f.context_line for f in again[-1].stacktrace)


def test_the_cached_chain_is_the_parsed_one_as_schema_structs() -> None:
    for text, language in ((JAVA, "java"), (NODE, "nodejs"), (GO_PANIC, "go"), (DOTNET, "dotnet")):
        parsed = parse_stacktrace(text, language)
        assert [msgspec.to_builtins(e) for e in parse_chain(text, language) or ()] == [
            msgspec.to_builtins(msgspec.convert(e, ExceptionInfoStruct)) for e in parsed or ()]
