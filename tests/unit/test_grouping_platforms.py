"""Grouping version 2, class by class: what differs between two builds of one bug must not split it, what
differs between two bugs must not merge them. Frames are written the way each Sentry SDK sends them (the
recorded corpus in tests/data/grouping_corpus has the real payloads; test_grouping_corpus.py scores it)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.events import ErrorEvent, ExceptionInfo, StackFrame
from stream_processors.fingerprint import group_event
from stream_processors.grouping_platforms import RULES, canonical_recursion, verdict


def event(platform: str, *frames: dict[str, Any], type: str = "Error", value: str = "boom",  # noqa: A002
          service: str = "shop", chain: list[tuple[str, str, list[dict[str, Any]]]] | None = None) -> ErrorEvent:
    exceptions = [ExceptionInfo(type=t, value=v, stacktrace=[StackFrame(**f) for f in fs])
                  for t, v, fs in (chain or [(type, value, list(frames))])]
    return ErrorEvent(service=service, platform=platform, exceptions=exceptions)


def fp(e: ErrorEvent) -> str:
    return group_event(e).fingerprint


def same(a: ErrorEvent, b: ErrorEvent) -> None:
    ta: list[str] = []
    tb: list[str] = []
    assert fp(a) == fp(b), (group_event(a, trace=ta), ta, group_event(b, trace=tb), tb)


def different(a: ErrorEvent, b: ErrorEvent) -> None:
    assert fp(a) != fp(b)


def java(module: str, function: str, in_app: bool = True, line: int = 10) -> dict[str, Any]:
    return {"module": module, "function": function, "in_app": in_app, "filename": module.split(".")[-1] + ".java",
            "lineno": line}


# --- JVM -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("one", "other"), [
    ("com.shop.OrderService$$EnhancerBySpringCGLIB$$a1b2c3d4", "com.shop.OrderService$$EnhancerBySpringCGLIB$$9f8e7d6c"),
    ("com.shop.OrderService$$SpringCGLIB$$0", "com.shop.OrderService$$SpringCGLIB$$1"),
    ("com.shop.Order$HibernateProxy$kD3x9Qa", "com.shop.Order$HibernateProxy$Zz81LmP"),
    ("com.shop.Repo$ByteBuddy$abc123", "com.shop.Repo$ByteBuddy$def456"),
    ("jdk.proxy2.$Proxy12", "com.sun.proxy.$Proxy7"),
    ("com.shop.Shop$$Lambda$14/0x0000000800c0b448", "com.shop.Shop$$Lambda/0x0000000801a2c000"),
    ("jdk.internal.reflect.GeneratedMethodAccessor12", "jdk.internal.reflect.GeneratedMethodAccessor31"),
])
def test_jvm_generated_class_names_do_not_split_an_issue(one: str, other: str) -> None:
    def ev(generated: str) -> ErrorEvent:
        return event("java", java("com.shop.Api", "post"), java(generated, "charge"), java("com.shop.Billing", "charge"),
                     type="IllegalStateException")
    same(ev(one), ev(other))


def test_jvm_renumbered_lambdas_and_anonymous_classes_do_not_split_an_issue() -> None:
    a = event("java", java("com.shop.Orders", "total"), java("com.shop.Orders", "lambda$total$1"),
              java("com.shop.Orders$1", "run"), type="NullPointerException")
    b = event("java", java("com.shop.Orders", "total"), java("com.shop.Orders", "lambda$total$3"),
              java("com.shop.Orders$2", "run"), type="NullPointerException")
    same(a, b)


def test_jvm_reflection_glue_is_left_out() -> None:
    direct = event("java", java("com.shop.Jobs", "run"), java("com.shop.Orders", "lookup"), type="NullPointerException")
    reflective = event("java", java("com.shop.Jobs", "run"), java("java.lang.reflect.Method", "invoke", in_app=False),
                       java("jdk.internal.reflect.DirectMethodHandleAccessor", "invoke", in_app=True),
                       java("com.shop.Orders", "lookup"), type="NullPointerException")
    same(direct, reflective)


def test_jvm_stack_overflow_groups_wherever_the_jvm_cut_the_stack() -> None:
    cycle = [java("com.shop.Tree", "a"), java("com.shop.Tree", "b"), java("com.shop.Tree", "c")]
    deep = event("java", *(cycle * 80)[1:], type="StackOverflowError")  # starts at b
    shallow = event("java", *(cycle * 40)[2:-1], type="StackOverflowError")  # starts at c, ends at b
    same(deep, shallow)
    other = event("java", *([java("com.shop.Tree", "a"), java("com.shop.Tree", "d")] * 50), type="StackOverflowError")
    different(deep, other)


def test_jvm_canonical_names() -> None:
    assert verdict("java", "com.shop.Shop$$Lambda$14/0x0000000800c0b448", "apply", None, True, None).key == \
        "com.shop.Shop$$Lambda.apply"
    assert verdict("java", "jdk.proxy2.$Proxy12", "charge", None, True, None).key == "proxy.$Proxy.charge"
    assert verdict("java", "com.shop.Orders$1", "run", None, True, None).key == "com.shop.Orders$anon.run"
    assert verdict("java", "com.shop.Orders", "lambda$total$12", None, True, None).key == "com.shop.Orders.lambda$total"


def test_jvm_frames_are_in_app_by_package_whatever_the_sdk_said() -> None:
    assert not verdict("java", "java.util.HashMap", "get", None, True, None).in_app
    assert not verdict("java", "org.springframework.web.servlet.FrameworkServlet", "service", None, True, None).in_app
    assert verdict("java", "com.shop.Orders", "total", None, True, None).in_app


# --- JavaScript ----------------------------------------------------------------------------------------
def js(function: str, path: str, in_app: bool = True, context: str | None = None) -> dict[str, Any]:
    return {"function": function, "abs_path": path, "filename": path, "in_app": in_app, "context_line": context}


def test_javascript_content_hashed_bundles_and_minified_names_do_not_split_an_issue() -> None:
    a = event("javascript", js("oa", "https://shop.example.com/static/app.E7WR2INL.js"),
              js("Module.t", "https://shop.example.com/static/chunk-5BWVLJVS.js"),
              type="TypeError", value="Cannot read properties of undefined (reading 'amount')")
    b = event("javascript", js("Xe", "https://cdn.example.com/assets/app.VPSGRZLZ.js?v=2"),
              js("Module.u", "https://cdn.example.com/assets/chunk-523IAC6I.js"),
              type="TypeError", value="Cannot read properties of undefined (reading 'amount')")
    same(a, b)
    webpack = event("javascript", js("r", "https://shop.example.com/js/main.3f9a2c1b.js"), type="TypeError",
                    value="x is not a function")
    webpack_next = event("javascript", js("n", "https://shop.example.com/js/main.77ab01ee.js"), type="TypeError",
                         value="x is not a function")
    same(webpack, webpack_next)


@pytest.mark.parametrize(("one", "other"), [
    ("https://shop.example.com/assets/index-DiwrgTda.js", "https://shop.example.com/assets/index-BqX_apZk.js"),  # Vite
    ("https://shop.example.com/static/js/123.4e5f6a1b.chunk.js", "https://shop.example.com/static/js/87.90ab12cd.chunk.js"),
    ("https://shop.example.com/js/vendor.min.js?v=41", "https://cdn.example.com/js/vendor.min.js?v=42#x"),
])
def test_javascript_bundle_names_of_two_builds_are_one_file(one: str, other: str) -> None:
    assert verdict("javascript", None, "xY", one, True, None).key == verdict("javascript", None, "Zq", other, True,
                                                                             None).key


def test_javascript_names_of_unbundled_code_are_kept() -> None:
    assert verdict("javascript", None, "checkout", "webpack-internal:///./src/cart.js", True, None).key == \
        verdict("javascript", None, "checkout", "webpack:///./src/cart.js", True, None).key == "cart.checkout"
    assert verdict("node", None, "go", "/srv/app/index.js", True, None).key == "index.go"
    assert verdict("javascript", None, "r.handleClick", "https://x/app.E7WR2INL.js", True, None).key == \
        "app.<hash>.handleClick"


def test_javascript_minified_bugs_are_told_apart_by_their_words() -> None:
    """Minified frames say nothing: two TypeErrors in one bundle are two issues by their messages."""
    amount = event("javascript", js("oa", "https://shop.example.com/app.E7WR2INL.js"), type="TypeError",
                   value="Cannot read properties of undefined (reading 'amount')")
    length = event("javascript", js("oa", "https://shop.example.com/app.E7WR2INL.js"), type="TypeError",
                   value="Cannot read properties of undefined (reading 'length')")
    different(amount, length)


def test_javascript_bundler_runtime_and_node_internals_are_not_the_app() -> None:
    plain = event("node", js("main", "/srv/shop/releases/41/src/app.js"), js("total", "/srv/shop/releases/41/src/orders.js"))
    busy = event("node", js("main", "/srv/shop/releases/42/src/app.js"),
                 js("processTicksAndRejections", "node:internal/process/task_queues", in_app=False),
                 js("__webpack_require__", "/srv/shop/releases/42/src/app.js"),
                 js("Module._compile", "node:internal/modules/cjs/loader", in_app=True),
                 js("query", "/srv/shop/releases/42/node_modules/pg/lib/client.js", in_app=True),
                 js("total", "/srv/shop/releases/42/src/orders.js"))
    same(plain, busy)


def test_javascript_async_entry_and_module_level_code() -> None:
    """``Object.<anonymous>`` at the start only says whether the call came before or after an await."""
    first = event("node", js("Object.<anonymous>", "/app/app.js", context="main();"), js("main", "/app/app.js"),
                  js("total", "/app/orders.js"))
    later = event("node", js("main", "/app/app.js"), js("total", "/app/orders.js"))
    same(first, later)


# --- Go ------------------------------------------------------------------------------------------------
def go(module: str, function: str, path: str, in_app: bool = True) -> dict[str, Any]:
    return {"module": module, "function": function, "abs_path": path, "in_app": in_app}


def test_go_renumbered_closures_and_module_versions_do_not_split_an_issue() -> None:
    a = event("go", go("main", "main", "/build/a/main.go"), go("main", "main.func1", "/build/a/main.go"),
              go("example.com/shop/orders/v2", "(*Store).Total", "/build/a/orders/store.go"),
              go("example.com/shop/orders/v2", "1", "/build/a/orders/store.go"), type="runtime.errorString")
    b = event("go", go("main", "main", "main.go", in_app=False), go("main", "main.func3", "main.go", in_app=False),
              go("example.com/shop/orders/v3", "(*Store).Total", "example.com/shop/orders/v3/store.go", in_app=False),
              go("example.com/shop/orders/v3", "2.1", "example.com/shop/orders/v3/store.go", in_app=False),
              type="runtime.errorString")
    same(a, b)


def test_go_standard_library_and_module_cache_are_not_the_app_whatever_the_build_paths() -> None:
    """A -trimpath build makes sentry-go take standard library frames for the app's (their paths lose GOROOT)."""
    for module, path in [("net/http", "net/http/server.go"), ("runtime", "/usr/local/go/src/runtime/panic.go"),
                         ("github.com/lib/pq", "/home/ci/go/pkg/mod/github.com/lib/pq@v1.10.9/conn.go"),
                         ("github.com/lib/pq", "github.com/lib/pq@v1.10.9/conn.go")]:
        assert not verdict("go", module, "f", path, True, None).in_app, module
    assert verdict("go", "main", "main", "main.go", False, None).in_app
    assert verdict("go", "example.com/shop/orders", "Total", "example.com/shop/orders/store.go", False, None).in_app
    assert verdict("go", "shop/internal/orders", "Total", "shop/internal/orders/store.go", False, None).in_app  # `module shop`
    assert not verdict("go", "html", "EscapeString", "html/escape.go", True, None).in_app


# --- .NET ----------------------------------------------------------------------------------------------
def cs(module: str, function: str, in_app: bool | None = None, path: str | None = None) -> dict[str, Any]:
    return {"module": module, "function": function, "abs_path": path,
            "in_app": not module.startswith(("System", "Microsoft")) if in_app is None else in_app}


def test_dotnet_renumbered_async_state_machines_and_closures_do_not_split_an_issue() -> None:
    awaiter = [cs("System.Runtime.ExceptionServices.ExceptionDispatchInfo", "Throw"),
               cs("System.Runtime.CompilerServices.TaskAwaiter", "ThrowForNonSuccess")]
    a = event("csharp", cs("Shop.Api.OrdersController+<Post>d__3", "MoveNext", path="C:\\agent\\s\\Orders.cs"),
              *awaiter, cs("Shop.Orders.OrderService+<ChargeAsync>d__12", "MoveNext"),
              cs("Shop.Orders.Reports+<>c__DisplayClass7_0", "<GetTotals>b__0"), type="System.NullReferenceException")
    b = event("csharp", cs("Shop.Api.OrdersController+<Post>d__5", "MoveNext", path="/src/Orders.cs"),
              cs("Shop.Orders.OrderService+<ChargeAsync>d__14", "MoveNext"),
              cs("Shop.Orders.Reports+<>c__DisplayClass9_0", "<GetTotals>b__2"), type="System.NullReferenceException")
    same(a, b)
    other = event("csharp", cs("Shop.Api.OrdersController+<Post>d__5", "MoveNext"),
                  cs("Shop.Orders.OrderService+<RefundAsync>d__2", "MoveNext"), type="System.NullReferenceException")
    different(a, other)


def test_dotnet_local_functions_and_generic_arity() -> None:
    assert verdict("csharp", "Shop.Orders.Checkout", "<Charge>g__Validate|4_0", None, True, None).key == \
        verdict("csharp", "Shop.Orders.Checkout", "<Charge>g__Validate|7_1", None, True, None).key == \
        "Shop.Orders.Checkout.Validate"
    assert verdict("csharp", "Shop.Data.Repository`1", "Find", None, True, None).key == "Shop.Data.Repository.Find"


def test_dotnet_enhanced_frames_name_the_method() -> None:
    v = verdict("csharp", "Shop.Orders.OrderService", "async Task<Order> OrderService.ChargeAsync(int orderId)",
                None, True, None)
    assert v.key == "Shop.Orders.OrderService.ChargeAsync"
    assert verdict("csharp", "Shop.Orders.OrderService+<ChargeAsync>d__12", "MoveNext", None, True, None).key == v.key


# --- Python --------------------------------------------------------------------------------------------
def py(module: str, function: str, path: str, context: str | None = None, in_app: bool = True) -> dict[str, Any]:
    return {"module": module, "function": function, "abs_path": path, "context_line": context, "in_app": in_app}


def test_python_recursion_cut_at_any_depth_is_one_issue() -> None:
    def ev(depth: int) -> ErrorEvent:
        return event("python", py("shop", "main", "/app/shop.py"),
                     *[py("shop", "walk", "/app/shop.py")] * depth, type="RecursionError")
    same(ev(3), ev(97))


def test_python_site_packages_moves_and_asyncio_plumbing_do_not_split_an_issue() -> None:
    a = event("python", py("asyncio.runners", "run", "/usr/lib/python3.11/asyncio/runners.py", in_app=False),
              py("shop.rates", "fetch", "/srv/app/releases/411/shop/rates.py"),
              py("httpx._client", "send", "/srv/app/.venv/lib/python3.11/site-packages/httpx/_client.py", in_app=True),
              type="ConnectError")
    b = event("python", py("asyncio.base_events", "run_until_complete", "/usr/lib/python3.12/asyncio/base_events.py",
                           in_app=False),
              py("shop.rates", "fetch", "/opt/shop/releases/412/shop/rates.py"),
              py("httpx._client", "send", "/usr/local/lib/python3.12/dist-packages/httpx/_client.py", in_app=True),
              type="ConnectError")
    same(a, b)


# --- everywhere ----------------------------------------------------------------------------------------
def test_module_level_raises_of_two_scripts_are_two_issues() -> None:
    """`<module>` says nothing: the source line that raised tells two module-level failures apart."""
    a = event("python", py("__main__", "<module>", "/app/a.py", 'raise RuntimeError("no config")'),
              type="RuntimeError", value="no config")
    b = event("python", py("__main__", "<module>", "/app/b.py", 'raise RuntimeError("no queue")'),
              type="RuntimeError", value="no queue")
    different(a, b)


def test_an_issue_belongs_to_one_service() -> None:
    frames = [py("shop.orders", "total", "/app/shop/orders.py")]
    different(event("python", *frames, service="billing"), event("python", *frames, service="checkout"))


def test_failures_in_shared_framework_code_are_told_apart_by_their_words() -> None:
    http = [cs("System.Net.Http.HttpConnection", "SendAsync"), cs("System.Net.Http.HttpClient", "SendAsync")]
    reset = event("csharp", *http, type="System.IO.IOException",
                  value="Unable to read data from the transport connection: Connection reset by peer (10.2.0.7:443).")
    reset_again = event("csharp", *http, type="System.IO.IOException",
                        value="Unable to read data from the transport connection: Connection reset by peer (10.9.1.3:443).")
    ended = event("csharp", *http, type="System.IO.IOException",
                  value="The response ended prematurely, with at least 12 additional bytes expected.")
    same(reset, reset_again)
    different(reset, ended)


def test_windows_and_linux_paths_of_one_file_are_one_frame() -> None:
    assert (verdict("node", None, "total", "C:\\deploy\\41\\src\\orders.js", True, None).key
            == verdict("node", None, "total", "/srv/deploy/42/src/orders.js", True, None).key)


@pytest.mark.parametrize(("one", "other"), [
    ("slow query on 2001:db8:0:1::5 took 1.5s", "slow query on [fe80::1%eth0]:5432 took 3m2.25s"),
    ("at 2026-12-07T10:00:03Z for <Order object at 0x7f3a0c2e1d0>", "at Tue, 01 Dec 2026 10:15:00 GMT for <Order object at 0x55d1e2>"),
    ("deadline 00:00:01.532 missed at 12/7/2026 10:00:03", "deadline 00:00:02.001 missed at 1/30/2027 09:11:00"),
])
def test_message_only_events_group_by_logger_and_template(one: str, other: str) -> None:
    def msg(text: str, logger: str = "shop.db") -> ErrorEvent:
        return ErrorEvent(service="shop", platform="go", logger=logger, message=text)
    same(msg(one), msg(other))
    different(msg(one), msg(one, logger="shop.cache"))


# --- hostile input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", [*(p for r in RULES.values() for p in r.platforms), "other", "", "\x00"])
def test_odd_frames_never_raise(platform: str) -> None:
    huge = "$" * 200_000 + "lambda$x$1" + "/0x" * 10_000
    for module, function, path, context in [(None, None, None, None), ("", "", "", ""), (huge, huge, huge, huge),
                                            ("\x00\ud7ff", "<>", "\\\\?\\C:\\a", "\n\t"), ("+<", "<>d__", "//", None)]:
        v = verdict(platform, module, function, path, None, context)
        assert isinstance(v.key, str) and len(v.key) < 3_000
    e = event(platform or "other", {"function": "f" * 200, "module": "m" * 200, "in_app": None}, {})
    assert len(fp(e)) == 32


def test_canonical_recursion_keeps_what_is_not_recursive() -> None:
    assert canonical_recursion(["a", "b", "c"]) == ["a", "b", "c"]
    assert canonical_recursion(["m", "f", "f", "f", "g"]) == ["m", "f", "g"]
    assert canonical_recursion(["c", "a", "b"] * 5 + ["c"]) == canonical_recursion(["a", "b", "c"] * 4 + ["a", "b"])
    assert canonical_recursion(["c", "a", "b"] * 5) == ["a", "b", "c"]


def test_every_rule_is_documented_with_its_reason() -> None:
    """docs/grouping.md#platform-frame-rules lists every rule of every rules file with its `why`."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    docs = root.joinpath("docs", "grouping.md").read_text()
    for path in sorted(root.joinpath("stream_processors", "grouping_platforms").glob("*.toml")):
        data = tomllib.loads(path.read_text())
        for rule in [*data.get("rewrite", []), *data.get("frame", []), *data.get("method_from_module", [])]:
            assert rule["why"].replace("|", "\\|") in docs, (path.name, rule["why"])


@pytest.mark.parametrize(("platform", "one", "other"), [
    ("go", ("main", "init.0"), ("main", "init.3")),  # init functions numbered in source order
    ("csharp", ("Shop.Worker+<>c+<<ExecuteAsync>b__0_0>d", "MoveNext"),  # async lambdas
     ("Shop.Worker+<>c+<<ExecuteAsync>b__2_1>d__4", "MoveNext")),
    ("csharp", (None, "lambda_method12(Closure, Object)"), (None, "lambda_method87(Closure, Object)")),
    ("java", ("com.shop.Repo$load$2", "invokeSuspend"), ("com.shop.Repo$load$5", "invokeSuspend")),  # Kotlin
])
def test_more_compiler_numbering_does_not_split_a_frame(platform: str, one: tuple[str | None, str],
                                                         other: tuple[str | None, str]) -> None:
    assert verdict(platform, *one, None, True, None).key == verdict(platform, *other, None, True, None).key


def test_python_comprehension_frames_are_left_out() -> None:
    """Python 3.12 inlines comprehensions (PEP 709): one bug on 3.11 and 3.12 is one issue."""
    py311 = event("python", py("shop.cart", "total", "/app/shop/cart.py"),
                  py("shop.cart", "<listcomp>", "/app/shop/cart.py", "return [price(i) for i in items]"),
                  py("shop.cart", "price", "/app/shop/cart.py"), type="KeyError")
    py312 = event("python", py("shop.cart", "total", "/app/shop/cart.py"), py("shop.cart", "price", "/app/shop/cart.py"),
                  type="KeyError")
    same(py311, py312)


def test_javascript_minified_files_without_a_bundle_name_are_recognised_by_their_names() -> None:
    """A file served minified under a plain name (`shop.js`): most of its frames have minifier-shaped names."""
    a = event("javascript", js("oa", "https://shop.example.com/js/shop.js"), js("Xe", "https://shop.example.com/js/shop.js"),
              js("t", "https://shop.example.com/js/shop.js"), type="TypeError", value="e.items is undefined")
    b = event("javascript", js("ra", "https://shop.example.com/js/shop.js?v=2"),
              js("Qa", "https://shop.example.com/js/shop.js?v=2"), js("n", "https://shop.example.com/js/shop.js?v=2"),
              type="TypeError", value="e.items is undefined")
    same(a, b)
    readable = event("javascript", js("checkout", "https://shop.example.com/js/shop.js"),
                     js("go", "https://shop.example.com/js/shop.js"), js("applyCoupon", "https://shop.example.com/js/shop.js"),
                     type="TypeError")
    trace: list[str] = []
    group_event(readable, trace=trace)
    assert "'shop.go'" in trace[0] and "'shop.checkout'" in trace[0]  # one short name among readable ones stays
