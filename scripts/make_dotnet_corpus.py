"""Write ``tests/data/grouping_corpus/csharp.jsonl``: HAND-MADE .NET events, not recorded.

No .NET SDK installs on these machines (no ``dotnet``), so Sentry's .NET SDK cannot run here. These
payloads follow the shape the Sentry .NET SDK documents and sends (platform ``csharp``; frames with
``module`` = the declaring type, ``package`` = the assembly, ``function`` as the stack-trace mode writes it,
Windows paths from a Windows build agent and Linux paths from a container build): one app in the SDK's
``Original`` stack-trace mode (``MoveNext`` of ``Type+<Method>d__N``) and one in ``Enhanced`` mode
(``async Task<Order> OrderService.ChargeAsync(int orderId)``). Build ``b`` renumbers what the C# compiler
numbers (state machines, closure classes, lambdas) and moves lines. Re-record with the real SDK where
``dotnet`` exists; until then re-create with:

    python scripts/make_dotnet_corpus.py
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "grouping_corpus" / "csharp.jsonl"
HEADER = ("# HAND-MADE from the Sentry .NET SDK's documented event shape (no dotnet on the recording machine); "
          "label rule: two events are one issue exactly when the app raised them at the same place in its "
          "source for the same reason; builds, releases, values, paths and compiler numbering never change it.")
_AWAIT = [  # what every await between two frames of the app adds in Original mode
    ("System.Runtime.ExceptionServices.ExceptionDispatchInfo", "Throw", "System.Private.CoreLib"),
    ("System.Runtime.CompilerServices.TaskAwaiter", "ThrowForNonSuccess", "System.Private.CoreLib"),
    ("System.Runtime.CompilerServices.TaskAwaiter", "HandleNonSuccessAndDebuggerNotification", "System.Private.CoreLib"),
    ("System.Runtime.CompilerServices.TaskAwaiter`1", "GetResult", "System.Private.CoreLib"),
]


def _path(build: str, file: str) -> tuple[str, str]:
    if build == "a":  # a Windows build agent
        return f"C:\\agent\\_work\\7\\s\\src\\Shop\\{file}", f"src\\Shop\\{file}"
    return f"/src/Shop/{file}", f"src/Shop/{file}"  # a Linux container build


def _frame(module: str, function: str, package: str, build: str = "", file: str = "", line: int = 0,
           in_app: bool | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"module": module, "function": function, "package": package,
                             "in_app": in_app if in_app is not None else not module.startswith(("System", "Microsoft"))}
    if file:
        frame["abs_path"], frame["filename"] = _path(build, file)
        frame["lineno"], frame["colno"] = line, 17
    return frame


def _framework(module: str, function: str) -> dict[str, Any]:
    return _frame(module, function, module.split(".")[0] + "." + module.split(".")[1] if "." in module else module)


def _event(service: str, build: str, label: str, exceptions: list[dict[str, Any]] | None = None,
           message: str | None = None, logger: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_id": uuid.uuid4().hex, "platform": "csharp", "level": "error" if exceptions else "warning",
        "release": f"{service}@{'4.2.0' if build == 'a' else '4.3.0'}+{uuid.uuid4().hex[:7]}",
        "environment": "production", "sdk": {"name": "sentry.dotnet", "version": "5.16.1"},
        "server_name": f"{service}-{build}", "timestamp": "2026-12-07T10:00:00Z",
    }
    if exceptions is not None:
        payload["exception"] = {"values": exceptions}
    if message is not None:
        payload["logentry"] = {"message": message}
        payload["logger"] = logger
    return {"label": label, "service": service, "build": build, "payload": payload}


def original_mode(build: str, rng: random.Random) -> list[dict[str, Any]]:
    """``shop-dotnet``: the SDK's Original stack-trace mode, as the CLR names frames."""
    pad = 0 if build == "a" else 14
    charge_sm = "<ChargeAsync>d__12" if build == "a" else "<ChargeAsync>d__14"
    post_sm = "<Post>d__3" if build == "a" else "<Post>d__5"
    closure = "<>c__DisplayClass7_0" if build == "a" else "<>c__DisplayClass9_0"
    lam = "<GetTotals>b__0" if build == "a" else "<GetTotals>b__2"
    out = []
    for i in range(3):
        order = rng.randint(1000, 9999)
        frames = [
            _frame("Microsoft.AspNetCore.Mvc.Infrastructure.ControllerActionInvoker", "InvokeActionMethodAsync",
                   "Microsoft.AspNetCore.Mvc.Core"),
            *[_framework(m, f) for m, f, _ in _AWAIT],
            _frame(f"Shop.Api.OrdersController+{post_sm}", "MoveNext", "Shop.Api", build, "OrdersController.cs", 41 + pad),
            *[_framework(m, f) for m, f, _ in _AWAIT],
            _frame(f"Shop.Orders.OrderService+{charge_sm}", "MoveNext", "Shop.Orders", build, "OrderService.cs", 88 + pad),
        ]
        out.append(_event("shop-dotnet", build, "dotnet-null-ref-charge-async", [
            {"type": "System.NullReferenceException", "value": "Object reference not set to an instance of an object.",
             "module": "System.Private.CoreLib", "stacktrace": {"frames": frames},
             "mechanism": {"type": "AppDomain.UnhandledException", "handled": False}}]))
        frames = [
            _frame("Shop.Api.ReportsController", "Get", "Shop.Api", build, "ReportsController.cs", 22 + pad),
            _frame("Shop.Orders.Reports", "GetTotals", "Shop.Orders", build, "Reports.cs", 30 + pad),
            _frame("System.Linq.Enumerable", "Sum", "System.Linq"),
            _frame("System.Linq.Enumerable+SelectListIterator`2", "MoveNext", "System.Linq"),
            _frame(f"Shop.Orders.Reports+{closure}", lam, "Shop.Orders", build, "Reports.cs", 31 + pad),
        ]
        out.append(_event("shop-dotnet", build, "dotnet-invalid-op-linq-lambda", [
            {"type": "System.InvalidOperationException", "value": f"Order {order} has no currency.",
             "module": "System.Private.CoreLib", "stacktrace": {"frames": frames}}]))
        frames = [
            _frame(f"Shop.Api.OrdersController+{post_sm}", "MoveNext", "Shop.Api", build, "OrdersController.cs", 44 + pad),
            _frame("Shop.Orders.PriceList", "PriceOf", "Shop.Orders", build, "PriceList.cs", 17 + pad),
            _frame("System.Collections.Generic.Dictionary`2", "get_Item", "System.Private.CoreLib"),
            _frame("System.ThrowHelper", "ThrowKeyNotFoundException", "System.Private.CoreLib"),
        ]
        out.append(_event("shop-dotnet", build, "dotnet-key-not-found-price", [
            {"type": "System.Collections.Generic.KeyNotFoundException",
             "value": f"The given key 'sku-{order}' was not present in the dictionary.",
             "module": "System.Private.CoreLib", "stacktrace": {"frames": frames}}]))
        http = [
            _frame("System.Net.Http.HttpConnection", "SendAsync", "System.Net.Http"),
            *[_framework(m, f) for m, f, _ in _AWAIT[:2]],
            _frame("System.Net.Http.HttpConnectionPool", "SendWithVersionDetectionAndRetryAsync", "System.Net.Http"),
            *[_framework(m, f) for m, f, _ in _AWAIT[:2]],
            _frame("System.Net.Http.HttpClient", "<SendAsync>g__Core|83_0", "System.Net.Http"),
        ]
        # two different failures raised in the framework, with frames alike: their words tell them apart
        out.append(_event("shop-dotnet", build, "dotnet-http-connection-reset", [
            {"type": "System.IO.IOException", "value": "Unable to read data from the transport connection: "
             f"Connection reset by peer (10.2.{i}.{order % 200}:443).", "module": "System.Private.CoreLib",
             "stacktrace": {"frames": http}}]))
        out.append(_event("shop-dotnet", build, "dotnet-http-response-ended", [
            {"type": "System.IO.IOException", "value": "The response ended prematurely, with at least "
             f"{rng.randint(10, 99)} additional bytes expected.", "module": "System.Private.CoreLib",
             "stacktrace": {"frames": http}}]))
        out.append(_event("shop-dotnet", build, "dotnet-message-reserve-slow", message=(
            f"Order {order} took 00:00:0{i + 1}.{rng.randint(100, 999)} to reserve (deadline 00:00:01) "
            f"at {rng.randint(1, 12)}/{rng.randint(1, 28)}/2026 {rng.randint(1, 12)}:0{i}:11 PM"),
            logger="Shop.Orders.OrderService"))
    return out


def enhanced_mode(build: str, rng: random.Random) -> list[dict[str, Any]]:
    """``billing-dotnet``: the SDK's default Enhanced mode (async methods and lambdas by their source names)."""
    pad = 0 if build == "a" else 9
    lam = "lambda_method1" if build == "a" else "lambda_method4"
    out = []
    for _ in range(3):
        invoice = rng.randint(10_000, 99_999)
        frames = [
            _frame("Billing.Program", "async Task Program.Main(string[] args)", "Billing", build, "Program.cs", 12 + pad),
            _frame("Billing.Invoices.InvoiceJob", "async Task InvoiceJob.RunAsync(CancellationToken ct)", "Billing",
                   build, "InvoiceJob.cs", 35 + pad),
            _frame("Billing.Invoices.InvoiceService", "async Task<Invoice> InvoiceService.IssueAsync(int invoiceId)",
                   "Billing", build, "InvoiceService.cs", 61 + pad),
            _frame("Billing.Invoices.TaxTable", "decimal TaxTable.RateFor(string country)", "Billing", build,
                   "TaxTable.cs", 19 + pad),
        ]
        out.append(_event("billing-dotnet", build, "dotnet-enhanced-tax-rate", [
            {"type": "System.ArgumentOutOfRangeException",
             "value": f"Specified argument was out of the range of valid values. (Parameter 'country') invoice {invoice}",
             "module": "System.Private.CoreLib", "stacktrace": {"frames": frames}}]))
        frames = [
            _frame("Billing.Program", "async Task Program.Main(string[] args)", "Billing", build, "Program.cs", 12 + pad),
            _frame("Billing.Invoices.InvoiceJob", "async Task InvoiceJob.RunAsync(CancellationToken ct)", "Billing",
                   build, "InvoiceJob.cs", 40 + pad),
            _frame("Billing.Invoices.InvoiceJob", f"void InvoiceJob.<RunAsync>b__{3 if build == 'a' else 5}_0(Invoice i)",
                   "Billing", build, "InvoiceJob.cs", 42 + pad),
            _frame("lambda_method", lam, "Anonymously Hosted DynamicMethods Assembly", in_app=False),
        ]
        out.append(_event("billing-dotnet", build, "dotnet-enhanced-lambda-format", [
            {"type": "System.FormatException", "value": f"Input string '{invoice}x' was not in a correct format.",
             "module": "System.Private.CoreLib", "stacktrace": {"frames": frames}}]))
    return out


def main() -> None:
    rng = random.Random(24)
    records = [r for build in ("a", "b") for r in original_mode(build, rng) + enhanced_mode(build, rng)]
    OUT.write_text("\n".join([HEADER, *(json.dumps(r, separators=(",", ":"), sort_keys=True) for r in records)])
                   + "\n")
    print(f"{OUT}: {len(records)} events")


if __name__ == "__main__":
    main()
