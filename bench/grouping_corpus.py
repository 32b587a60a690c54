"""Grouping accuracy on a corpus of chained exceptions and message-only events with known true groups.

LogHub measures message templates only; this corpus measures what engineers see in an error tracker:
real raised exception chains (one root cause under different outer failures, different root causes
under one wrapper, shifted line numbers, recursion depth, frameless roots) and log events (one
statement at different levels, quoted names, dates written with names, ids of varying shape, hosts
as names or addresses). Every event goes through the worker's own ``EventProcessor``.

The SDK corpus (``tests/data/grouping_corpus/*.jsonl``, recorded from the real Sentry SDKs by
``scripts/record_grouping_corpus.py``; .NET hand-made, see its file) goes the gateway's way: the
Sentry payload is converted by ``producers.gateway`` (``convert_sentry_payload``), then processed by the
worker's ``EventProcessor`` (scrub, group). Scores are per platform and over everything.

Run: ``python -m bench.grouping_corpus`` (prints GA and pairwise F1 as in
``../shared/bench/grouping_accuracy.py``, per platform); ``--json`` for one JSON object.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import textwrap
import types
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from producers.capture import event_from_exception
from producers.gateway.sentry_typed import convert_sentry_payload
from schemas.events import ErrorEvent
from schemas.fast import encode
from stream_processors.event_processor import EventProcessor

SDK_CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "grouping_corpus"

CHAINS = """
    class StorageUnavailable(Exception):
        pass

    class CheckoutFailed(Exception):
        pass

    class RefundFailed(Exception):
        pass

    class UpstreamTimeout(Exception):
        pass

    def query(order_id):
        raise TimeoutError(f"database timed out after {order_id % 30 + 1}s")

    def load_order(order_id):
        try:
            query(order_id)
        except TimeoutError as exc:
            raise StorageUnavailable(f"orders store unavailable for {order_id}") from exc

    def checkout(order_id):
        try:
            load_order(order_id)
        except StorageUnavailable as exc:
            raise CheckoutFailed(f"checkout of order {order_id} failed") from exc

    def refund(order_id):
        try:
            load_order(order_id)
        except StorageUnavailable as exc:
            raise RefundFailed(f"refund of order {order_id} failed") from exc

    def inventory_refused(n):
        try:
            raise ConnectionRefusedError(f"connect to 10.0.{n % 250}.7:5432 refused")
        except ConnectionRefusedError as exc:
            raise UpstreamTimeout(f"inventory unavailable (attempt {n})") from exc

    def inventory_reset(n):
        try:
            raise ConnectionResetError(f"connection to 10.0.{n % 250}.7 reset by peer")
        except ConnectionResetError as exc:
            raise UpstreamTimeout(f"inventory unavailable (attempt {n})") from exc

    def walk(node, depth):
        if depth == 0:
            raise RecursionError(f"tree too deep at {node}")
        return walk(node, depth - 1)

    def never_raised(n):
        cause = KeyError(f"sku-{n}")  # created, never raised: no frames
        raise LookupError(f"catalogue lookup {n} failed") from cause
"""

MESSAGE_TEMPLATES: list[tuple[str, Callable[[random.Random], str]]] = [
    ("retry", lambda r: f"payment provider refused charge {r.randrange(10**8):08x} after {r.randint(1, 5)}/5 retries"),
    ("quoted", lambda r: f"no customer named '{r.choice(['bob smith', 'Ada Lovelace', 'li wei'])}' in tenant "
                         f"{r.randint(1, 99)}"),
    ("apostrophe", lambda r: 'supplier "' + r.choice(["O'Brien & Sons", "Dunn's Hardware", "Joe's"])
                             + f'" rejected invoice {r.randint(1000, 9999)}'),
    ("rfc1123", lambda r: f"upstream answered 503 at {r.choice(['Tue', 'Wed', 'Sun'])}, {r.randint(1, 28):02d} "
                          f"{r.choice(['Nov', 'Dec', 'Jan'])} 2026 {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00 GMT"),
    ("prose-date", lambda r: f"certificate for shop expires {r.randint(1, 28)} {r.choice(['November', 'May'])} "
                             f"{r.choice([2026, 2027])}"),
    ("request-id", lambda r: f"request {r.choice([f'{r.randrange(16**8):08x}', f'{r.randrange(10**8):08d}'])} "
                             "timed out in the gateway"),
    ("host", lambda r: f"connection from {r.choice([f'10.1.{r.randint(0, 255)}.{r.randint(1, 254)}', 'web-3.eu.example.com', 'db-1.internal.example.net'])} "
                       "closed unexpectedly"),
    ("refused", lambda r: f"connect to cache-{r.randint(1, 9)}:6379 refused"),
    ("reset", lambda r: f"connect to cache-{r.randint(1, 9)}:6379 reset"),
]


def _module(directory: Path, name: str, source: str, padding: int = 0) -> types.ModuleType:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text("\n" * padding + textwrap.dedent(source))
    module = types.ModuleType(name)
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)  # noqa: S102 - the corpus' own code
    return module


def _capture(fn: Callable[..., Any], *args: Any) -> ErrorEvent:
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - every corpus function raises
        return event_from_exception(exc, service="shop")
    raise AssertionError(f"{fn} did not raise")


def corpus(seed: int = 7, per_group: int = 12) -> Iterator[tuple[str, ErrorEvent]]:
    """(true group, event) pairs."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        # one module in three deploys: the same code with its lines shifted
        modules = [_module(Path(tmp) / f"deploy{i}", "shop", CHAINS, padding=i * 3) for i in range(3)]
        for i in range(per_group):
            mod = modules[i % 3]
            n = rng.randint(1, 10_000)
            yield "checkout-over-storage-timeout", _capture(mod.checkout, n)
            yield "refund-over-storage-timeout", _capture(mod.refund, n)
            yield "inventory-refused", _capture(mod.inventory_refused, n)
            yield "inventory-reset", _capture(mod.inventory_reset, n)
            yield "recursion", _capture(mod.walk, f"n{n}", rng.randint(2, 60))
            yield "frameless-root", _capture(mod.never_raised, n)
    levels = ["warning", "error", "warning", "critical"]
    for name, template in MESSAGE_TEMPLATES:
        for i in range(per_group):
            yield f"message-{name}", ErrorEvent(service="shop", logger="shop.worker", message=template(rng),
                                                level=levels[i % len(levels)])  # type: ignore[arg-type]


def scores(truth: list[str], keys: list[str]) -> tuple[float, float]:
    """Grouping accuracy and pairwise F1, as defined in ../shared/bench/grouping_accuracy.py."""
    by_truth: dict[str, set[int]] = defaultdict(set)
    by_key: dict[str, set[int]] = defaultdict(set)
    for i, (t, k) in enumerate(zip(truth, keys, strict=True)):
        by_truth[t].add(i)
        by_key[k].add(i)
    correct = sum(len(members) for members in by_truth.values()
                  if by_key[keys[next(iter(members))]] == members)
    pairs = Counter((t, k) for t, k in zip(truth, keys, strict=True))
    both = sum(n * (n - 1) // 2 for n in pairs.values())
    grouped = sum(len(m) * (len(m) - 1) // 2 for m in by_key.values())
    true_pairs = sum(len(m) * (len(m) - 1) // 2 for m in by_truth.values())
    precision = both / grouped if grouped else 1.0
    recall = both / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return correct / len(truth), f1


def sdk_corpus(directory: Path = SDK_CORPUS) -> Iterator[tuple[str, str, bytes]]:
    """(platform file, true group, our event as JSON) for every recorded SDK payload, through the gateway."""
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue  # the label rule heads each file
            record = json.loads(line)
            event = convert_sentry_payload(json.dumps(record["payload"]).encode(), service=record["service"])
            yield path.stem, f"{path.stem}:{record['label']}", encode(event)


def _score(truth: list[str], keys: list[str]) -> dict[str, Any]:
    ga, f1 = scores(truth, keys)
    return {"events": len(truth), "true_groups": len(set(truth)), "predicted_groups": len(set(keys)),
            "grouping_accuracy": round(ga, 3), "pairwise_f1": round(f1, 3)}


def run(seed: int = 7, per_group: int = 12, version: int | None = None) -> dict[str, Any]:
    """The Python chains and messages corpus, built here from really raised exceptions."""
    processor = EventProcessor()
    if version is not None:
        processor.grouping_version = version
    truth: list[str] = []
    keys: list[str] = []
    for group, event in corpus(seed, per_group):
        outcome = processor.process(event.model_dump_json().encode())
        assert outcome.processed is not None, outcome.dead_letter
        truth.append(group)
        keys.append(outcome.processed.fingerprint)
        encode(outcome.processed)
    return _score(truth, keys)


def run_platforms(directory: Path = SDK_CORPUS, version: int | None = None) -> dict[str, dict[str, Any]]:
    """GA and pairwise F1 of the SDK corpus per platform file and over all of them (``all``)."""
    processor = EventProcessor()
    if version is not None:
        processor.grouping_version = version
    by_platform: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for platform, label, raw in sdk_corpus(directory):
        outcome = processor.process(raw)
        assert outcome.processed is not None, outcome.dead_letter
        for name in (platform, "all"):
            by_platform[name][0].append(label)
            by_platform[name][1].append(outcome.processed.fingerprint)
    return {name: _score(truth, keys) for name, (truth, keys) in sorted(by_platform.items(), key=lambda kv: (
        kv[0] == "all", kv[0]))}


def main() -> None:
    version = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--version=")), None)
    result = {"python-chains-and-messages": run(version=version), **run_platforms(version=version)}
    if "--json" in sys.argv:
        print(json.dumps(result))
        return
    print(f"{'corpus':<28} {'events':>6} {'groups':>6} {'issues':>6} {'GA':>6} {'F1':>6}")
    for name, r in result.items():
        print(f"{name:<28} {r['events']:>6} {r['true_groups']:>6} {r['predicted_groups']:>6} "
              f"{r['grouping_accuracy']:>6.3f} {r['pairwise_f1']:>6.3f}")


if __name__ == "__main__":
    main()
